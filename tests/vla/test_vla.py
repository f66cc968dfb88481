"""The VLA stage on synthetic data: learns, beats the mean action, bundles reproducibly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import write_caption_shards, write_episodes

from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus
from vlaforge.models.flow import flow_time
from vlaforge.models.heads import ActionExpertConfig
from vlaforge.models.llm import LLMConfig
from vlaforge.models.vit import ViTConfig
from vlaforge.models.vla import build_vla, load_backbone
from vlaforge.policy import Observation
from vlaforge.policy.bundle import VLAPolicy, load_vla
from vlaforge.policy.specs import load_policy
from vlaforge.robotics.config import PreprocessConfig, read_preprocessing_config
from vlaforge.robotics.loader import make_loader
from vlaforge.robotics.memory import InMemorySamples
from vlaforge.robotics.preprocess import preprocess
from vlaforge.stages.llm_pretrain import LLMStageConfig, llm_pretrain
from vlaforge.stages.vla_finetune import RoboticsTask, VLAStageConfig, precompute_backbone_states, vla_finetune
from vlaforge.stages.vlm_pretrain import VLMStageConfig, vlm_pretrain
from vlaforge.train.config import TrainConfig


def _train_cfg(steps: int, lr: float = 3e-3, batch: int = 16) -> TrainConfig:
    return TrainConfig(global_batch_size=batch, micro_batch_size=batch, lr=lr, warmup_steps=5, max_steps=steps,
                       val_every=steps, ckpt_every=10_000, log_every=steps)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("vla")
    corpus = root / "corpus"
    corpus.mkdir()
    for i in range(6):
        (corpus / f"d{i}.txt").write_text("move toward the square. move away from the square. " * 20)
    tokenize_corpus(TokenizeConfig(corpus=str(corpus), robot_fraction=0.0, vocab_size=300, seq_len=32,
                                   val_fraction=0.2), str(root / "tok"))
    llm_pretrain(LLMStageConfig(model=LLMConfig(d_model=32, n_layers=2, n_heads=2, max_seq_len=128),
                                train=_train_cfg(10)), str(root / "tok"), str(root / "llm"))
    write_caption_shards(str(root / "captions"), 120)
    vlm_pretrain(VLMStageConfig(vit=ViTConfig(image_size=32, patch_size=8, d_model=32, n_layers=1, n_heads=2),
                                train=_train_cfg(30)), str(root / "llm"), str(root / "captions"), str(root / "vlm"))
    write_episodes(str(root / "episodes"), 40)
    preprocess(PreprocessConfig(future_steps=4, past_steps=1, num_workers=0, val_fraction=0.2),
               [str(root / "episodes")], str(root / "robo"))
    cfg = VLAStageConfig(expert=ActionExpertConfig(d_model=64, n_layers=2, n_heads=4, last_k_layers=1),
                         train=_train_cfg(300, lr=2e-3, batch=32))
    summary = vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(root / "vla"))
    return root, summary


def test_flow_matching_loss_falls(trained):
    _, summary = trained
    assert summary["final_val_loss"] < 0.4 * summary["initial_val_loss"]


def test_predictions_beat_the_mean_action(trained):
    root, _ = trained
    model, _ = load_vla(str(root / "vla"))
    err_model, err_mean = _sample_error(model, root)
    assert err_model < 0.8 * err_mean, (err_model, err_mean)


def _observation(side: str) -> Observation:
    img = np.full((32, 32, 3), 235, np.uint8)
    img[10:20, (2 if side == "left" else 20):(12 if side == "left" else 30)] = (220, 30, 30)
    return Observation(images={"cam": img}, proprio=np.zeros(4, np.float32),
                       instruction="move toward the square", task="toward-square")


def test_bundle_reload_gives_identical_actions(trained, tmp_path):
    root, _ = trained
    copy = tmp_path / "bundle"
    shutil.copytree(root / "vla", copy, ignore=shutil.ignore_patterns("checkpoints"))
    history = [[_observation("left"), _observation("left")], [_observation("right")] * 2]
    first = VLAPolicy(str(root / "vla")).predict(history, seed=7)
    second = VLAPolicy(str(copy)).predict(history, seed=7)
    for a, b in zip(first, second):
        assert a.shape == (4, 4)
        np.testing.assert_array_equal(a, b)


def test_bundle_missing_files_is_named(trained, tmp_path):
    root, _ = trained
    broken = tmp_path / "broken"
    shutil.copytree(root / "vla", broken, ignore=shutil.ignore_patterns("checkpoints", "normalizer.json"))
    with pytest.raises(FileNotFoundError, match="missing normalizer.json"):
        VLAPolicy(str(broken))


def test_policy_spec_settings_override_the_bundle(trained):
    root, _ = trained
    policy = load_policy(f"{root / 'vla'}?execute_steps=2&flow_steps=3")
    assert (policy.execute_steps, policy.flow_steps) == (2, 3)
    default = load_policy(str(root / "vla"))
    assert default.flow_steps == 8 and default.execute_steps == 4
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['chunk'\]"):
        load_policy(f"{root / 'vla'}?chunk=2")
    with pytest.raises(ValueError, match="flow_steps must be a positive integer"):
        load_policy(f"{root / 'vla'}?flow_steps=0")


def test_expert_can_attend_to_the_image_tokens(trained):
    root, _ = trained
    cfg = VLAStageConfig(expert=ActionExpertConfig(d_model=32, n_layers=1, n_heads=2, last_k_layers=1,
                                                   image_tokens=True))
    backbone, _ = load_backbone(str(root / "vlm"))
    model = build_vla(backbone, cfg.expert, read_preprocessing_config(str(root / "robo")))
    batch = next(iter(make_loader(str(root / "robo"), 4, 0)))
    n_image = batch["images"].shape[1] * backbone.vlm.vit.cfg.tokens_per_image
    assert model.condition(batch).shape == (4, n_image + 1, backbone.hidden_size)
    model.loss(batch).backward()
    assert model.expert.image_pos.shape[1] == n_image and model.expert.image_pos.grad.abs().sum() > 0
    assert backbone.vlm.vit.patchify.weight.grad.abs().sum() > 0


def test_flow_time_weights_the_noisy_end():
    torch.manual_seed(0)
    t = flow_time(20_000, True, "cpu")
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    # 1 - Beta(1.5, 1) has mean 0.4: more samples near the noise end (t = 0) than near the actions.
    assert abs(float(t.mean()) - 0.4) < 0.01 and float((t < 0.5).float().mean()) > 0.6
    assert abs(float(flow_time(20_000, False, "cpu").mean()) - 0.5) < 0.01


def test_action_prediction_integrates_to_the_predicted_chunk(trained):
    """With ``prediction: actions`` the Euler steps land on the expert's clean chunk, whatever the noise."""
    root, _ = trained
    backbone, _ = load_backbone(str(root / "vlm"))
    expert = ActionExpertConfig(d_model=32, n_layers=1, n_heads=2, last_k_layers=1, prediction="actions")
    model = build_vla(backbone, expert, read_preprocessing_config(str(root / "robo")))
    batch = next(iter(make_loader(str(root / "robo"), 4, 0)))
    clean = torch.randn_like(batch["actions"])
    model.expert.forward = lambda cond, proprio, noisy, t: clean  # an expert that knows the answer
    for steps in (1, 3, 8):
        torch.testing.assert_close(model.sample(batch, torch.Generator().manual_seed(steps), steps=steps), clean)
    mask = batch["action_mask"].float()
    err = ((clean - batch["actions"]) ** 2).mean(-1)
    assert float(model.loss(batch)) == pytest.approx(float((err * mask).sum() / mask.sum()), rel=1e-5)
    with pytest.raises(ValueError, match="expert.prediction='noise'"):
        build_vla(backbone, ActionExpertConfig(last_k_layers=1, prediction="noise"),
                  read_preprocessing_config(str(root / "robo")))


def test_image_shift_applies_in_training_only(trained):
    root, _ = trained
    backbone, _ = load_backbone(str(root / "vlm"))
    model = build_vla(backbone, ActionExpertConfig(d_model=32, n_layers=1, n_heads=2, last_k_layers=1),
                      read_preprocessing_config(str(root / "robo")))
    task = RoboticsTask(str(root / "robo"), VLAStageConfig(image_shift=3), model)
    batch = next(iter(make_loader(str(root / "robo"), 8, 0)))
    seen = []
    real_loss = model.loss
    model.loss = lambda b: seen.append(b["images"]) or real_loss(b)
    model.train()
    task.loss(model, batch)
    model.eval()
    task.loss(model, batch)
    assert seen[0].shape == batch["images"].shape and not torch.equal(seen[0], batch["images"])
    assert torch.equal(seen[1], batch["images"])


def test_action_probe_script_reports_r2_per_action_dim(trained):
    """scripts/action_probe.py: the R^2 figures of docs/experiments/metaworld4.md, for a bundle and a trained CNN."""
    root, _ = trained
    script = Path(__file__).resolve().parents[2] / "scripts" / "action_probe.py"
    for args in (["--policy", str(root / "vla")], ["--cnn", "regression", "--seconds", "3"]):
        out = subprocess.run([sys.executable, str(script), str(root / "robo"), *args], check=True,
                             capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r2 = np.array([float("nan" if v == "n/a" else v) for v in out.split("per dim ")[1].split()])
        assert len(r2) == 4 and np.isfinite(r2).sum() >= 2 and np.nanmax(r2) <= 1.0, out
    assert "steps" in out  # the CNN line says how many steps it trained


def _sample_error(model, root) -> tuple[float, float]:
    """Masked MSE of sampled chunks on held-out samples, and of the mean action (normalised space)."""
    batch = next(iter(make_loader(str(root / "robo"), 96, split="val", infinite=False, shuffle_buffer=0)))
    pred = model.sample(batch, torch.Generator().manual_seed(0))
    mask = batch["action_mask"][..., None].float()
    mean_action = batch["actions"].mean(dim=(0, 1), keepdim=True)
    return tuple(float(((p - batch["actions"]) ** 2 * mask).sum() / mask.sum()) for p in (pred, mean_action))


def test_mlp_head_learns_from_its_own_feature_maps(trained, tmp_path):
    """expert.head=mlp: the expert's conv maps of the images and the action-token states drive the
    actions (the synthetic action's sign needs both the square's side and the instruction)."""
    root, _ = trained
    expert = ActionExpertConfig(head="mlp", mlp_width=128, map_channels=8, last_k_layers=1, prediction="actions")
    cfg = VLAStageConfig(expert=expert, freeze_backbone=True, data_in_memory=True, cache_backbone_states=True,
                         train=_train_cfg(150, lr=2e-3, batch=32))
    vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(tmp_path / "mlp"))
    model, config = load_vla(str(tmp_path / "mlp"))
    assert config["expert"]["head"] == "mlp" and config["freeze_backbone"]
    batch = next(iter(make_loader(str(root / "robo"), 4, 0)))
    n_map = batch["images"].shape[1] * 8 * (32 // 8) ** 2
    assert model.condition(batch).shape == (4, n_map + model.backbone.hidden_size)
    err_model, err_mean = _sample_error(model, root)
    assert err_model < 0.5 * err_mean, (err_model, err_mean)
    with pytest.raises(ValueError, match="built for 2 views of 32x32 but got 4 of 32x32"):
        model.condition({**batch, "images": batch["images"].repeat(1, 2, 1, 1, 1)})
    with pytest.raises(ValueError, match="expert.image_tokens is for expert.head=transformer"):
        build_vla(model.backbone, ActionExpertConfig(head="mlp", image_tokens=True, last_k_layers=1),
                  read_preprocessing_config(str(root / "robo")))


def test_cached_backbone_states_are_the_backbones_own(trained):
    """vla.cache_backbone_states: the frozen backbone runs once per sample; the expert reads the same values."""
    root, _ = trained
    backbone, _ = load_backbone(str(root / "vlm"), freeze=True)
    model = build_vla(backbone, ActionExpertConfig(head="mlp", mlp_width=32, map_channels=4, last_k_layers=1),
                      read_preprocessing_config(str(root / "robo")), freeze_backbone=True)
    samples = InMemorySamples(str(root / "robo"))
    for name, values in precompute_backbone_states(model, samples, batch_size=7).items():
        samples.add_column(name, values)
    batch = next(samples.batches(5, seed=3))
    cached = model.backbone_states(batch)
    computed = model.backbone_states({k: v for k, v in batch.items() if k != "backbone_states"})
    torch.testing.assert_close(cached, computed, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="need a frozen backbone"):
        build_vla(backbone, ActionExpertConfig(last_k_layers=1), read_preprocessing_config(str(root / "robo"))
                  ).backbone_states(batch)
    with pytest.raises(ValueError, match="cache_backbone_states needs vla.data_in_memory"):
        vla_finetune(VLAStageConfig(cache_backbone_states=True, freeze_backbone=True), str(root / "vlm"),
                     str(root / "robo"), str(root / "never"))


def test_vlm_head_sees_only_through_the_vlm_and_trains_the_action_token(trained, tmp_path):
    """expert.head=vlm_mlp: no image encoder of its own (ViT patch states + LLM image-token states +
    action-token states); over a frozen backbone with cached ViT states its loss falls, it beats the
    mean action, and the <|action|> embedding (that row alone) trains."""
    root, _ = trained
    backbone, _ = load_backbone(str(root / "vlm"), freeze=True)
    token = backbone.action_token_id
    before = backbone.vlm.llm.embed.weight.detach().clone()
    expert = ActionExpertConfig(head="vlm_mlp", mlp_width=128, map_channels=8, last_k_layers=1,
                                prediction="actions", train_action_token=True)
    cfg = VLAStageConfig(expert=expert, freeze_backbone=True, data_in_memory=True, cache_backbone_states=True,
                         train=_train_cfg(150, lr=2e-3, batch=32))
    summary = vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(tmp_path / "vlm_mlp"))
    assert summary["final_val_loss"] < 0.5 * summary["initial_val_loss"], summary
    model, config = load_vla(str(tmp_path / "vlm_mlp"))
    assert config["expert"]["head"] == "vlm_mlp"
    assert not any("encoder" in name for name, _ in model.expert.named_parameters())
    after = model.backbone.vlm.llm.embed.weight.detach()
    changed = (after - before).abs().sum(1) > 0
    assert changed.nonzero().flatten().tolist() == [token]  # the action token's row, nothing else
    err_model, err_mean = _sample_error(model, root)
    assert err_model < 0.7 * err_mean, (err_model, err_mean)

    # Gradients of the loss reach the action-token embedding through the frozen LLM, and only that row.
    train_model = build_vla(backbone, expert, read_preprocessing_config(str(root / "robo")), freeze_backbone=True)
    batch = next(iter(make_loader(str(root / "robo"), 8, 0)))
    train_model.loss(batch).backward()
    grad = backbone.vlm.llm.embed.weight.grad
    assert grad[token].abs().sum() > 0 and grad.abs().sum() == grad[token].abs().sum()
    assert all(p.grad is None for n, p in backbone.named_parameters() if "embed" not in n)
    n_vit, n_llm = 2 * (32 // 8) ** 2, 2 * backbone.vlm.vit.cfg.tokens_per_image
    assert train_model.condition(batch).shape == (8, (n_vit + n_llm) * 8 + backbone.hidden_size)

    # Cached ViT states (float16) give the conditioning the backbone computes itself.
    cached = train_model.cacheable_states(batch)
    assert set(cached) == {"vision_states"} and cached["vision_states"].dtype == torch.float16
    torch.testing.assert_close(train_model.condition({**batch, **cached}), train_model.condition(batch),
                               rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="vision_features='pixels'"):
        build_vla(backbone, ActionExpertConfig(head="vlm_mlp", vision_features="pixels", last_k_layers=1),
                  read_preprocessing_config(str(root / "robo")))


def test_train_vision_fine_tunes_the_vit_alone_at_its_own_learning_rate(trained, tmp_path):
    """vla.train_vision over a frozen backbone: the ViT's weights train, in optimizer groups at
    train.lr * vision_lr_scale, while the LLM and projector stay as they were; its states cannot be cached."""
    from vlaforge.train.optim import build_optimizer

    root, _ = trained
    expert = ActionExpertConfig(head="vlm_mlp", mlp_width=64, map_channels=8, last_k_layers=1, prediction="actions")
    pre = read_preprocessing_config(str(root / "robo"))
    backbone, _ = load_backbone(str(root / "vlm"), freeze=True)
    model = build_vla(backbone, expert, pre, freeze_backbone=True, train_vision=True, vision_lr_scale=0.25)
    assert model.lr_scales() == {"backbone.vlm.vit.": 0.25}
    train = _train_cfg(20)
    vit_params = {id(p) for p in backbone.vlm.vit.parameters()}
    for group in build_optimizer(model, train).param_groups:
        assert group["lr_scale"] == (0.25 if id(group["params"][0]) in vit_params else 1.0)
        assert all((id(p) in vit_params) == (group["lr_scale"] == 0.25) for p in group["params"])
    with pytest.raises(ValueError, match="train_vision: false"):
        model.cacheable_states(next(iter(make_loader(str(root / "robo"), 4, 0))))
    with pytest.raises(ValueError, match="vla.train_vision: false"):
        VLAStageConfig(train_vision=True, freeze_backbone=True, data_in_memory=True, cache_backbone_states=True).validate()
    with pytest.raises(ValueError, match="vla.vision_lr_scale must be > 0, got 0"):
        VLAStageConfig(train_vision=True, vision_lr_scale=0).validate()

    cfg = VLAStageConfig(expert=expert, freeze_backbone=True, train_vision=True, vision_lr_scale=0.25,
                         data_in_memory=True, train=train)
    vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(tmp_path / "ft"))
    tuned, config = load_vla(str(tmp_path / "ft"))
    assert config["train_vision"] and config["vision_lr_scale"] == 0.25
    changed = _changed_backbone_weights(root, tuned)
    assert changed and all(n.startswith("vlm.vit.") for n in changed), sorted(changed)
    assert any(n.startswith("vlm.vit.patchify.") for n in changed)


def _changed_backbone_weights(root, tuned) -> set[str]:
    """The names of ``tuned``'s backbone weights that differ from the pretrained VLM's."""
    before = dict(load_backbone(str(root / "vlm"))[0].named_parameters())
    token = tuned.backbone.action_token_id  # its embedding row is drawn afresh whenever a backbone loads
    keep = {n: torch.arange(len(p)) != token if n == "vlm.llm.embed.weight" else slice(None)
            for n, p in before.items()}
    return {n for n, p in tuned.backbone.named_parameters()
            if not torch.equal(p.detach()[keep[n]], before[n].detach()[keep[n]])}


def test_vision_train_blocks_trains_the_vits_top_over_cached_states(trained, tmp_path):
    """vla.vision_train_blocks: only the ViT's last blocks and final norm train; the states entering them
    are cached (float16) and finish into the conditioning the ViT computes itself."""
    root, _ = trained
    expert = ActionExpertConfig(head="vlm_mlp", mlp_width=64, map_channels=8, last_k_layers=1, prediction="actions")
    pre = read_preprocessing_config(str(root / "robo"))
    backbone, _ = load_backbone(str(root / "vlm"), freeze=True)
    model = build_vla(backbone, expert, pre, freeze_backbone=True, train_vision=True, vision_train_blocks=1)
    vit = backbone.vlm.vit
    assert {n for n, p in vit.named_parameters() if p.requires_grad} == \
        {n for n, _ in vit.named_parameters() if n.startswith(("blocks.0.", "norm."))}
    batch = next(iter(make_loader(str(root / "robo"), 8, 0)))
    cached = model.cacheable_states(batch)
    assert set(cached) == {"vision_trunk"} and cached["vision_trunk"].dtype == torch.float16
    torch.testing.assert_close(model.condition({**batch, **cached}), model.condition(batch), rtol=1e-2, atol=1e-2)
    model.loss({**batch, **cached}).backward()
    assert vit.blocks[0].qkv.weight.grad.abs().sum() > 0 and vit.patchify.weight.grad is None
    with pytest.raises(ValueError, match="has 1 blocks, cannot take the last 2"):
        build_vla(backbone, expert, pre, freeze_backbone=True, train_vision=True, vision_train_blocks=2)
    with pytest.raises(ValueError, match=r"vla.vision_train_blocks=1: .* with vla.train_vision: true"):
        VLAStageConfig(vision_train_blocks=1).validate()

    cfg = VLAStageConfig(expert=expert, freeze_backbone=True, train_vision=True, vision_train_blocks=1,
                         data_in_memory=True, cache_backbone_states=True, train=_train_cfg(20))
    vla_finetune(cfg, str(root / "vlm"), str(root / "robo"), str(tmp_path / "top"))
    tuned, config = load_vla(str(tmp_path / "top"))
    assert config["vision_train_blocks"] == 1
    changed = _changed_backbone_weights(root, tuned)
    assert changed and all(n.startswith(("vlm.vit.blocks.0.", "vlm.vit.norm.")) for n in changed), sorted(changed)
