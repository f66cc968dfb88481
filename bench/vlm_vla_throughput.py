"""VLM and VLA training throughput (samples/s) on the tiny preset's model shapes, the robotics
data loader's samples/s against the VLA's consumption, and on the metaworld4 shapes (2 views of
64x64) the transformer expert fine-tuning the backbone, the mlp expert (own conv encoder) over
precomputed backbone states (metaworld4-conv), the vlm_mlp expert over precomputed ViT states
(``vla.cache_backbone_states``), the vlm_mlp expert with the whole ViT training (``vla.train_vision``)
and metaworld4's, with the ViT's last block training over cached states of the blocks before it
(``vla.vision_train_blocks: 1``), measured in the same run; then where the whole-ViT step's time goes
(the ViT's conv stem and its blocks, forward + backward, against the step over cached ViT states) and,
with ``--compile``, that step with the blocks ``train.compile`` compiles (the LLM's) under ``torch.compile``.

    .venv/bin/python bench/vlm_vla_throughput.py [--steps 20] [--threads 2] [--compile]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from synthetic_data import write_episodes  # noqa: E402

from vlaforge.config import load  # noqa: E402
from vlaforge.models.llm import LLMConfig, Transformer  # noqa: E402
from vlaforge.models.vit import to_model_images  # noqa: E402
from vlaforge.models.vla import VLA, ActionExpertConfig  # noqa: E402
from vlaforge.models.vlm_backbone import VLMBackbone  # noqa: E402
from vlaforge.models.vlm import IMAGE_TOKEN, VLM  # noqa: E402
from vlaforge.robotics.config import PreprocessConfig  # noqa: E402
from vlaforge.robotics.loader import make_loader  # noqa: E402
from vlaforge.robotics.preprocess import preprocess  # noqa: E402
from vlaforge.stages.vla_finetune import VLAStageConfig  # noqa: E402
from vlaforge.stages.vlm_pretrain import VLMStageConfig  # noqa: E402
from vlaforge.train.optim import build_optimizer  # noqa: E402
from vlaforge.train.strategy import block_modules  # noqa: E402


def _tokenizer(tmp: str):
    from vlaforge.data.tokenize import train_bpe

    tok = train_bpe(["move toward the square. a red square on the left."] * 50, 300, 1)
    tok.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tok


def _rate(step, batch_size: int, steps: int) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time the whole-ViT step compiled")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vlm_cfg = load(VLMStageConfig, "tiny", None, "vlm")
    vla_cfg = load(VLAStageConfig, "tiny", None, "vla")
    with tempfile.TemporaryDirectory() as tmp:
        tok = _tokenizer(tmp)
        llm = Transformer(LLMConfig(vocab_size=len(tok), d_model=64, n_layers=2, n_heads=4, max_seq_len=256))
        vlm = VLM(vlm_cfg.vit, llm, tok.convert_tokens_to_ids(IMAGE_TOKEN))
        size, n_tok = vlm_cfg.vit.image_size, vlm_cfg.vit.tokens_per_image
        B = vlm_cfg.train.micro_batch_size
        tokens = torch.randint(0, 200, (B, n_tok + 24))
        tokens[:, :n_tok] = vlm.image_token_id
        labels = tokens.clone()
        labels[:, :n_tok] = -100
        images = torch.randint(0, 255, (B, 1, 3, size, size), dtype=torch.uint8)
        opt = build_optimizer(vlm, vlm_cfg.train)

        def vlm_step():
            vlm.caption_loss(tokens, images, labels).backward()
            opt.step()
            opt.zero_grad()

        vlm_rate = _rate(vlm_step, B, args.steps)
        print(f"VLM  tiny preset: {vlm_rate:8.1f} samples/s (batch {B}, {size}x{size}, {n_tok} image tokens)")

        write_episodes(os.path.join(tmp, "eps"), 30, size=size)
        pre = PreprocessConfig(future_steps=8, past_steps=1, num_workers=0, val_fraction=0.0)
        preprocess(pre, [os.path.join(tmp, "eps")], os.path.join(tmp, "robo"))
        B = vla_cfg.train.micro_batch_size
        loader = iter(make_loader(os.path.join(tmp, "robo"), B, 0))
        batch = next(loader)
        vla = VLA(VLMBackbone(vlm, tok), vla_cfg.expert, 4, 4, 2, 8, freeze_backbone=vla_cfg.freeze_backbone,
                  views=(batch["images"].shape[1], size))
        opt = build_optimizer(vla, vla_cfg.train)

        def vla_step():
            vla.loss(batch).backward()
            opt.step()
            opt.zero_grad()

        vla_rate = _rate(vla_step, B, args.steps)
        load_rate = _rate(lambda: next(loader), B, args.steps)
        print(f"VLA  tiny preset: {vla_rate:8.1f} samples/s (batch {B}, {batch['images'].shape[1]} views)")
        print(f"robotics loader : {load_rate:8.1f} samples/s (0 workers) = {load_rate / vla_rate:.1f}x the VLA's consumption")
        metaworld4_heads(tok, args.steps, args.compile)


def metaworld4_heads(tok, steps: int, compile_blocks: bool = False) -> None:
    """The metaworld4 VLA shapes (its ViT and LLM, 2 views of 64x64): the transformer expert fine-tuning
    the backbone, the mlp expert with its own conv encoder over cached backbone states (metaworld4-conv,
    run R's recipe), the vlm_mlp expert (sees only through the VLM, its action token trains, the LLM
    runs every step) over cached ViT states, that expert with the whole ViT training, and metaworld4's (the
    ViT's last block training over the cached states entering it)."""
    vlm_cfg = load(VLMStageConfig, "metaworld4", None, "vlm")
    vla_cfg = load(VLAStageConfig, "metaworld4", None, "vla")
    conv = load(VLAStageConfig, "metaworld4-conv", None, "vla").expert
    B = vla_cfg.train.micro_batch_size
    batch = {"images": torch.randint(0, 255, (B, 2, 3, 64, 64), dtype=torch.uint8),
             "proprio": torch.randn(B, 1, 4), "actions": torch.randn(B, 8, 4),
             "action_mask": torch.ones(B, 8, dtype=torch.bool), "instruction": ["open the drawer"] * B}
    rates, steps_of = {}, {}
    for name, expert, freeze, train_vision, vit_blocks in (
            ("transformer head, backbone trained", ActionExpertConfig(d_model=128, n_layers=3, n_heads=4,
                                                                      last_k_layers=2, image_tokens=True), False, False, 0),
            ("mlp head (own encoder), states cached", conv, True, False, 0),
            ("vlm_mlp head, ViT cached", vla_cfg.expert, True, False, 0),
            ("vlm_mlp head, whole ViT trained", vla_cfg.expert, True, True, 0),
            ("vlm_mlp head (metaworld4), ViT top trained", vla_cfg.expert, True, vla_cfg.train_vision,
             vla_cfg.vision_train_blocks)):
        llm = Transformer(LLMConfig(vocab_size=len(tok) + 1, d_model=64, n_layers=2, n_heads=4, max_seq_len=256))
        backbone = VLMBackbone(VLM(vlm_cfg.vit, llm, tok.convert_tokens_to_ids(IMAGE_TOKEN)), tok)
        vla = VLA(backbone, expert, 4, 4, 1, 8, freeze_backbone=freeze,
                  n_image_tokens=backbone.image_token_count(2, 64), views=(2, 64), train_vision=train_vision,
                  vision_lr_scale=vla_cfg.vision_lr_scale, vision_train_blocks=vit_blocks)
        opt = build_optimizer(vla, vla_cfg.train)
        inputs = {**batch, **vla.cacheable_states(batch)} if freeze and (vit_blocks or not train_vision) else batch

        def step():
            vla.loss(inputs).backward()
            opt.step()
            opt.zero_grad()

        rates[name] = _rate(step, B, steps)
        steps_of[name] = (vla, step)
        print(f"VLA  metaworld4 {name:38s}: {rates[name]:8.1f} samples/s (batch {B})")
    first, second, third, fourth, fifth = rates.values()
    print(f"metaworld4 samples/s against the transformer head: mlp (own encoder, cached) {second / first:.2f}x, "
          f"vlm_mlp {third / first:.2f}x, vlm_mlp with the ViT training {fourth / first:.2f}x; "
          f"vlm_mlp / mlp {third / second:.2f}x; ViT trained / cached {fourth / third:.2f}x; "
          f"metaworld4 (ViT top trained) / whole ViT trained {fifth / fourth:.2f}x")
    vla, step = steps_of["vlm_mlp head, whole ViT trained"]
    vit_time_split(vla.backbone.vlm.vit, batch["images"], steps, B / fourth, B / third)
    if compile_blocks:
        for block in block_modules(vla):
            block.compile()
        compiled = _rate(step, B, steps)
        print(f"VLA  metaworld4 whole ViT trained, blocks compiled: {compiled:8.1f} samples/s = {compiled / fourth:.2f}x eager")


def vit_time_split(vit, images: torch.Tensor, steps: int, step_s: float, cached_step_s: float) -> None:
    """Milliseconds per batch of the ViT's conv stem and of its blocks (forward + backward), beside the
    whole step with the ViT training (``step_s``) and over cached ViT states (``cached_step_s``)."""
    x = to_model_images(images.flatten(0, 1))

    def stem():
        vit.patchify(x).sum().backward()

    def blocks():
        states = vit.patchify(x).flatten(2).transpose(1, 2).detach().requires_grad_()
        vit.resume(states, 0).sum().backward()

    ms = {name: 1000 / _rate(fn, 1, steps) for name, fn in (("stem", stem), ("blocks", blocks))}
    print(f"metaworld4 step with the whole ViT training: {1000 * step_s:.0f} ms, of which the ViT's stem "
          f"{ms['stem']:.0f} ms and its {len(vit.blocks)} blocks {ms['blocks']:.0f} ms (forward + backward); "
          f"the step over cached ViT states: {1000 * cached_step_s:.0f} ms")


if __name__ == "__main__":
    main()
