"""Which cameras show where things are: a localisation probe over Meta-World's cameras.

For each task it renders scenes along noisy expert trajectories from every camera (64x64 by default,
through the same JPEG codec as the robotics shards), then trains a small CNN per camera set to
predict the hand-relative positions the task turns on (reach: goal - hand; push: puck - hand and
goal - puck) from the frames and the proprio, and prints the held-out error in cm (episodes split
80/20, so held-out frames come from unseen scenes). Usage:

    .venv/bin/python scripts/camera_probe.py --tasks reach-v3 push-v3 --sets corner,behindGripper topview
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn as nn

from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.samples import decode_frame, encode_frame
from vlaforge.sim.baselines import GOAL, ExpertPolicy
from vlaforge.sim.env import CAMERAS, episode_seed, make_env

# task -> {name: hand-relative position from the flat Meta-World state}; never a policy input
TARGETS = {
    "reach-v3": {"goal - hand": lambda s: s[GOAL] - s[0:3]},
    "push-v3": {"puck - hand": lambda s: s[4:7] - s[0:3], "goal - puck": lambda s: s[GOAL] - s[4:7]},
}


def collect(task: str, episodes: int, every: int, image_size: int, noise: float,
            codec: PreprocessConfig) -> dict[str, np.ndarray]:
    """Frames of every camera, proprio, targets and episode ids at every ``every``-th expert step."""
    env = make_env(task, [], image_size)
    expert = ExpertPolicy(noise=noise, seed=0)
    frames, proprio, targets, episode = [], [], [], []
    for ep in range(episodes):
        obs = env.reset(episode_seed(task, ep, "caption"))
        for step in range(env.max_steps):
            if step % every == 0:
                frames.append(np.stack([decode_frame(encode_frame(env.render(cam), codec)) for cam in CAMERAS]))
                proprio.append(obs.proprio)
                targets.append(np.concatenate([f(obs.state) for f in TARGETS[task].values()]))
                episode.append(ep)
            obs, success, done = env.step(expert.predict([[obs]])[0][0])
            if success or done:
                break
    return {"frames": np.stack(frames), "proprio": np.stack(proprio).astype(np.float32),
            "targets": np.stack(targets).astype(np.float32), "episode": np.array(episode)}


class Probe(nn.Module):
    """One conv encoder per camera (flattened 8x8 maps), proprio, MLP to the targets."""

    def __init__(self, n_cameras: int, image_size: int, out_dim: int, width: int = 256):
        super().__init__()
        side = image_size // 8
        self.encoders = nn.ModuleList(nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
            nn.Conv2d(64, 32, 3, 2, 1), nn.GELU(), nn.Flatten(), nn.Linear(32 * side * side, width),
        ) for _ in range(n_cameras))
        self.head = nn.Sequential(nn.Linear(n_cameras * width + 4, width), nn.GELU(), nn.Linear(width, out_dim))

    def forward(self, images: torch.Tensor, proprio: torch.Tensor) -> torch.Tensor:
        feats = [enc(images[:, i]) for i, enc in enumerate(self.encoders)]
        return self.head(torch.cat([*feats, proprio], dim=-1))


def probe(data: dict[str, np.ndarray], cams: tuple[int, ...], steps: int, batch: int, seed: int) -> np.ndarray:
    """Held-out errors (frames x targets x 3 axes, metres) of a probe over the cameras ``cams``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    held_out = data["episode"] >= np.quantile(np.unique(data["episode"]), 0.8)
    images = torch.from_numpy(data["frames"][:, list(cams)]).permute(0, 1, 4, 2, 3).float().div_(255)
    proprio = torch.from_numpy(data["proprio"])
    targets = torch.from_numpy(data["targets"])
    scale = targets[~held_out].std(0) + 1e-6
    train_idx = np.flatnonzero(~held_out)
    model = Probe(len(cams), images.shape[-1], targets.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        idx = torch.from_numpy(rng.choice(train_idx, batch))
        loss = (model(images[idx], proprio[idx]) - targets[idx] / scale).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = model(images[held_out], proprio[held_out]) * scale
    return (pred - targets[held_out]).reshape(len(pred), -1, 3).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--every", type=int, default=8, help="take a frame every this many control steps")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--noise", type=float, default=0.3, help="expert action noise (spreads the hand positions)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sets", nargs="*", default=None,
                    help="camera sets to probe, e.g. corner,behindGripper topview (default: each camera alone)")
    ap.add_argument("--jpeg-quality", type=int, default=95)
    ap.add_argument("--jpeg-subsampling", default="4:4:4")
    args = ap.parse_args()
    torch.set_num_threads(2)
    camera_sets = [s.split(",") for s in args.sets] if args.sets else [[c] for c in CAMERAS]
    for cam in {c for cams in camera_sets for c in cams} - set(CAMERAS):
        raise SystemExit(f"unknown camera '{cam}'; known: {', '.join(CAMERAS)}")
    for task in args.tasks:
        t0 = time.time()
        data = collect(task, args.episodes, args.every, args.image_size, args.noise,
                       PreprocessConfig(jpeg_quality=args.jpeg_quality, jpeg_subsampling=args.jpeg_subsampling))
        names = list(TARGETS[task])
        print(f"\n{task}: {len(data['frames'])} frames from {args.episodes} episodes in {time.time() - t0:.0f} s; "
              f"held-out error in cm of {', '.join(names)}: distance (% of frames within 5 cm) | mean |x|, |y|, |z|")
        for cams in camera_sets:
            t = time.time()
            err = probe(data, tuple(CAMERAS.index(c) for c in cams), args.steps, args.batch, seed=0)
            dist = np.linalg.norm(err, axis=-1)
            cells = "   ".join(f"{100 * dist[:, j].mean():4.1f} ({100 * (dist[:, j] < 0.05).mean():3.0f}%) | "
                               + " ".join(f"{v:3.1f}" for v in 100 * np.abs(err[:, j]).mean(0))
                               for j in range(len(names)))
            print(f"  {' + '.join(cams):28s} {cells}   [{time.time() - t:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
