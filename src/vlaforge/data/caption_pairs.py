"""Image-caption shards (img2dataset layout) decoded into tensors for VLM training.

A sample is ``<key>.jpg|png|webp`` + ``<key>.txt`` (+ ``<key>.json``). A folder holds either one
``manifest.jsonl`` or ``train/`` and ``val/`` sub-folders with one each.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
import torch
from PIL import Image

from vlaforge import storage
from vlaforge.data.shards import MANIFEST, ShardError, iter_samples, read_manifest

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def decode_image(data: bytes, size: int, where: str, resize: bool = False) -> np.ndarray:
    """Encoded image -> (3, size, size) uint8; wrong mode or size is an error naming ``where``."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Exception as err:  # PIL raises several unrelated types for bad data
        raise ShardError(f"{where}: undecodable image: {err}") from err
    if img.mode != "RGB":
        raise ShardError(f"{where}: image mode is {img.mode}, expected RGB")
    if img.size != (size, size):
        if not resize:
            raise ShardError(f"{where}: image is {img.size[0]}x{img.size[1]}, expected {size}x{size} "
                             f"(set resize_images: true to resize)")
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def load_caption_pairs(uri: str, image_size: int, resize: bool = False) -> list[tuple[np.ndarray, str]]:
    pairs = []
    for shard in read_manifest(uri):
        for sample in iter_samples(shard.uri):
            where = f"{shard.uri} sample {sample['__key__']}"
            ext = next((e for e in IMAGE_EXTS if e in sample), None)
            if ext is None:
                raise ShardError(f"{where}: no image ({'/'.join(IMAGE_EXTS)})")
            if "txt" not in sample or not sample["txt"].strip():
                raise ShardError(f"{where}: caption missing (no .txt)")
            pairs.append((decode_image(sample[ext], image_size, where, resize), sample["txt"].decode("utf-8").strip()))
    return pairs


def caption_splits(uri: str, image_size: int, resize: bool = False, val_fraction: float = 0.1):
    """(train, val) pairs: from train/ and val/ sub-folders, or a stable hash split of one folder."""
    if storage.exists(storage.join(uri, "train", MANIFEST)):
        return (load_caption_pairs(storage.join(uri, "train"), image_size, resize),
                load_caption_pairs(storage.join(uri, "val"), image_size, resize))
    pairs = load_caption_pairs(uri, image_size, resize)
    is_val = [zlib.crc32(img.tobytes()) % 1000 < val_fraction * 1000 for img, _ in pairs]
    train = [p for p, v in zip(pairs, is_val) if not v]
    val = [p for p, v in zip(pairs, is_val) if v] or train[-1:]
    return train, val


class CaptionBatcher:
    """Tokenizes pairs into ``[<|image|>] * n + caption + eos`` with labels on the caption only."""

    def __init__(self, tokenizer, image_token_id: int, tokens_per_image: int, max_caption_tokens: int):
        self.tok = tokenizer
        self.image_token_id = image_token_id
        self.tokens_per_image = tokens_per_image
        self.max_caption_tokens = max_caption_tokens

    def overlong(self, captions: list[str]) -> tuple[int, int]:
        """(how many of ``captions`` are cut at ``max_caption_tokens``, the longest one's tokens)."""
        lengths = [len(ids) for ids in self.tok(captions, add_special_tokens=False)["input_ids"]] or [0]
        return sum(n > self.max_caption_tokens for n in lengths), max(lengths)

    def __call__(self, pairs: list[tuple[np.ndarray, str]]) -> dict[str, torch.Tensor]:
        captions = [self.tok(c, add_special_tokens=False)["input_ids"][: self.max_caption_tokens] + [self.tok.eos_token_id]
                    for _, c in pairs]
        length = self.tokens_per_image + max(len(c) for c in captions)
        tokens = torch.full((len(pairs), length), self.tok.pad_token_id, dtype=torch.long)
        labels = torch.full((len(pairs), length), -100, dtype=torch.long)
        for i, ids in enumerate(captions):
            tokens[i, : self.tokens_per_image] = self.image_token_id
            tokens[i, self.tokens_per_image: self.tokens_per_image + len(ids)] = torch.tensor(ids)
            labels[i, self.tokens_per_image: self.tokens_per_image + len(ids)] = torch.tensor(ids)
        images = torch.from_numpy(np.stack([img for img, _ in pairs]))[:, None]  # (B, 1, 3, H, W)
        return {"tokens": tokens, "labels": labels, "images": images}
