"""How well does a policy fit each action dimension? Held-out R^2 of the first action, per dimension.

Two probes on one set of robotics shards (a ``preprocess_robotics`` output):

- ``--policy BUNDLE``: a saved VLA bundle samples the first action of held-out samples;
- ``--cnn {regression,velocity,actions}``: a small CNN (one encoder shared by the cameras, features
  flattened with proprio and a task one-hot) trained here for ``--seconds`` wall time, either by MSE
  regression of the action chunk or with a flow-matching MLP head predicting the velocity or the
  clean chunk (the VLA's own loss and sampler); ``--time`` picks how training flow times are drawn (``noisy``: 1 - Beta(1.5, 1) as the
  VLA does, ``clean``: Beta(1.5, 1), ``uniform``). It is the reference for what the observation
  holds: if the CNN fits an action dimension and the policy does not, the policy's model loses it.

    .venv/bin/python scripts/action_probe.py SHARDS --policy runs/.../vla-finetune/policy
    .venv/bin/python scripts/action_probe.py SHARDS --cnn actions --seconds 150 [--shift 4] [--threads 2]

R^2 = 1 - MSE / variance per normalised action dimension (1: exact, 0: the mean, -1: sampling the
marginal independently of the observation; n/a: the dimension is constant in the held-out samples). docs/experiments/metaworld4.md has the figures of this machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn

from vlaforge.models.vit import to_model_images
from vlaforge.models.flow import flow_matching_loss, flow_time, integrate_flow
from vlaforge.models.heads import conv_encoder
from vlaforge.robotics.augment import random_shift
from vlaforge.robotics.config import read_preprocessing_config
from vlaforge.robotics.loader import make_loader


class CNNProbe(nn.Module):
    """Conv encoder per camera + MLP head; regression, or a flow-matching head over the noisy chunk."""

    def __init__(self, n_views: int, image_size: int, proprio: int, tasks: list[str], action_dim: int,
                 chunk: int, objective: str, time_mode: str):
        super().__init__()
        self.enc = nn.Sequential(conv_encoder(32), nn.Flatten())  # the VLA's mlp-head encoder
        feat = n_views * 32 * (image_size // 8) ** 2 + proprio + len(tasks)
        flow = objective != "regression"
        width = feat + (action_dim * chunk + 1 if flow else 0)
        self.head = nn.Sequential(nn.Linear(width, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                  nn.Linear(512, action_dim * chunk))
        self.tasks, self.objective, self.time_mode = tasks, objective, time_mode
        self.shape = (chunk, action_dim)

    def features(self, batch: dict) -> torch.Tensor:
        B = batch["images"].shape[0]
        views = self.enc(to_model_images(batch["images"].flatten(0, 1))).view(B, -1)
        task = nn.functional.one_hot(torch.tensor([self.tasks.index(t) for t in batch["task"]]), len(self.tasks))
        return torch.cat([views, batch["proprio"].flatten(1), task.float()], 1)

    def out(self, feat: torch.Tensor, xt: torch.Tensor | None = None, t: torch.Tensor | None = None):
        parts = [feat] if xt is None else [feat, xt.flatten(1), t[:, None]]
        return self.head(torch.cat(parts, 1)).view(-1, *self.shape)

    def loss(self, batch: dict) -> torch.Tensor:
        x1, feat, mask = batch["actions"], self.features(batch), batch["action_mask"].float()
        if self.objective == "regression":
            return ((self.out(feat) - x1).pow(2).mean(-1) * mask).sum() / mask.sum()
        t = flow_time(len(x1), self.time_mode != "uniform", x1.device)
        t = 1 - t if self.time_mode == "clean" else t
        return flow_matching_loss(lambda xt, t: self.out(feat, xt, t), x1, t, mask, self.objective)

    @torch.no_grad()
    def sample(self, batch: dict, steps: int = 8) -> torch.Tensor:
        feat = self.features(batch)
        if self.objective == "regression":
            return self.out(feat)
        return integrate_flow(lambda xt, t: self.out(feat, xt, t), torch.randn_like(batch["actions"]), steps,
                              self.objective)


def train_cnn(shards: str, objective: str, time_mode: str, seconds: float, shift: int) -> tuple[CNNProbe, int]:
    pre = read_preprocessing_config(shards)
    tasks = sorted({t for b in make_loader(shards, 256, 0, split="val", infinite=False, shuffle_buffer=0)
                    for t in b["task"]})
    model = CNNProbe(len(pre.cameras) * len(pre.image_indices), pre.image_size, pre.proprio_dim * (pre.past_steps + 1),
                     tasks, pre.action_dim, pre.future_steps, objective, time_mode)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    batches, steps, start = iter(make_loader(shards, 32, 0, seed=0, shuffle_buffer=512)), 0, time.time()
    while time.time() - start < seconds:
        batch = next(batches)
        batch = {**batch, "images": random_shift(batch["images"], shift)}
        loss = model.loss(batch)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    return model.eval(), steps


def first_action_r2(sample, shards: str, batches: int = 6) -> np.ndarray:
    """R^2 per action dimension of ``sample(batch)[:, 0]`` on the first held-out batches of 64 (NaN for
    a dimension that is constant there)."""
    torch.manual_seed(0)
    pred, true = [], []
    for i, batch in enumerate(make_loader(shards, 64, 0, split="val", infinite=False, shuffle_buffer=0)):
        if i == batches:
            break
        pred.append(sample(batch)[:, 0])
        true.append(batch["actions"][:, 0])
    p, y = torch.cat(pred).numpy(), torch.cat(true).numpy()
    var = y.var(0)
    return np.where(var > 0, 1 - ((p - y) ** 2).mean(0) / np.where(var > 0, var, 1), np.nan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("shards", help="robotics shards (a preprocess_robotics output)")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--policy", help="a VLA policy bundle to probe")
    which.add_argument("--cnn", choices=["regression", "velocity", "actions"], help="train the CNN probe")
    ap.add_argument("--time", choices=["noisy", "clean", "uniform"], default="noisy", help="flow-time weighting")
    ap.add_argument("--seconds", type=float, default=150.0, help="CNN training wall time")
    ap.add_argument("--shift", type=int, default=4, help="random-shift augmentation, pixels")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.policy:
        from vlaforge.policy.bundle import load_vla

        model, _ = load_vla(args.policy)
        label, steps = args.policy, None
        r2 = first_action_r2(lambda b: model.sample(b), args.shards)
    else:
        model, steps = train_cnn(args.shards, args.cnn, args.time, args.seconds, args.shift)
        label = f"cnn {args.cnn} (time {args.time}, {args.seconds:.0f} s)"
        r2 = first_action_r2(model.sample, args.shards)
    print(f"{label}: {'' if steps is None else f'{steps} steps, '}held-out R^2 of the first action per dim "
          + " ".join("n/a" if np.isnan(v) else f"{v:.3f}" for v in r2))


if __name__ == "__main__":
    main()
