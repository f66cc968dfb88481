"""Tiny synthetic data sets whose targets depend on the image (and the instruction), for model tests.

A scene is a light image with one coloured square on the left or the right. Captions name colour and
side; robot episodes move the hand towards the square ("move toward the square") or away from it
("move away from the square"), so a policy must read both the image and the instruction.
"""

from __future__ import annotations

import io
import json
import random

import numpy as np
from PIL import Image

from vlaforge.data.shards import ShardWriter

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
INSTRUCTIONS = {"toward": "move toward the square", "away": "move away from the square"}


def square_image(colour: str, side: str, size: int, rng: random.Random) -> np.ndarray:
    img = np.full((size, size, 3), 235, dtype=np.uint8)
    s = size // 3
    x0 = rng.randint(0, size // 2 - s) + (0 if side == "left" else size // 2)
    y0 = rng.randint(0, size - s)
    img[y0:y0 + s, x0:x0 + s] = COLOURS[colour]
    return img


def write_caption_shards(out: str, n: int, size: int = 32, seed: int = 0, mode: str = "RGB") -> None:
    rng = random.Random(seed)
    with ShardWriter(out, prefix="captions", samples_per_shard=100) as writer:
        for i in range(n):
            colour, side = rng.choice(list(COLOURS)), rng.choice(["left", "right"])
            buf = io.BytesIO()
            Image.fromarray(square_image(colour, side, size, rng)).convert(mode).save(buf, format="PNG")
            caption = f"a {colour} square on the {side}"
            writer.write({"__key__": f"{i:06d}", "png": buf.getvalue(), "txt": caption,
                          "json": json.dumps({"uid": f"{i:06d}", "caption": caption, "width": size, "height": size})})


def write_episodes(out: str, n: int, length: int = 12, size: int = 32, seed: int = 0, prefix: str = "ep") -> None:
    """Raw episodes (vlaforge.robotics.episodes format) with one camera, ``cam``; ids ``<prefix>-<i>``."""
    from vlaforge.robotics.episodes import EpisodeWriter

    rng = random.Random(seed)
    writer = EpisodeWriter(out)
    for i in range(n):
        mode, side = rng.choice(list(INSTRUCTIONS)), rng.choice(["left", "right"])
        direction = (1.0 if side == "right" else -1.0) * (1.0 if mode == "toward" else -1.0)
        frames = np.stack([square_image(rng.choice(list(COLOURS)), side, size, rng) for _ in range(length)])
        pos = np.zeros((length, 4), np.float32)
        action = np.zeros((length, 4), np.float32)
        for t in range(length):
            action[t] = [0.5 * direction, 0.1 * np.sin(t), 0.0, 1.0 if t > length // 2 else -1.0]
            if t + 1 < length:
                pos[t + 1] = pos[t] + 0.01 * action[t]
        writer.write(f"{prefix}-{i:05d}", f"{mode}-square", INSTRUCTIONS[mode], {"cam": frames}, pos, action,
                     success=np.arange(length) == length - 1, seed=i)
    writer.close()


def train_small_vlm(root, text: str, captions: int, train) -> str:
    """tokenize -> llm_pretrain -> vlm_pretrain at the smallest sizes, on ``text`` repeated and ``captions``
    synthetic image-caption pairs, under ``root``; returns the VLM folder."""
    from vlaforge.data.tokenize import TokenizeConfig, tokenize_corpus
    from vlaforge.models.llm import LLMConfig
    from vlaforge.models.vit import ViTConfig
    from vlaforge.stages.llm_pretrain import LLMStageConfig, llm_pretrain
    from vlaforge.stages.vlm_pretrain import VLMStageConfig, vlm_pretrain

    (root / "corpus").mkdir()
    (root / "corpus" / "a.txt").write_text(text * 40)
    tokenize_corpus(TokenizeConfig(corpus=str(root / "corpus"), robot_fraction=0.0, vocab_size=280, seq_len=32,
                                   val_fraction=0.2), str(root / "tok"))
    llm_pretrain(LLMStageConfig(model=LLMConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=128), train=train),
                 str(root / "tok"), str(root / "llm"))
    write_caption_shards(str(root / "captions"), captions)
    vlm_pretrain(VLMStageConfig(vit=ViTConfig(image_size=32, patch_size=8, d_model=32, n_layers=1, n_heads=2),
                                train=train), str(root / "llm"), str(root / "captions"), str(root / "vlm"))
    return str(root / "vlm")
