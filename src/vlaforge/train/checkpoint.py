"""Checkpoints: safetensors weights + JSON config + optimizer state + trainer position.

A checkpoint folder ``<dir>/step_<N>/`` is complete before ``<dir>/latest.json`` points at it, so a
restarted pod resumes from the newest complete one. Optimizer state is read with
``torch.load(weights_only=True)``: never unpickle arbitrary objects from an artifact store.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from vlaforge import storage

log = logging.getLogger(__name__)
LATEST = "latest.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_weights(model: torch.nn.Module, local_dir: str) -> None:
    save_model(model, os.path.join(local_dir, WEIGHTS))


def load_weights(model: torch.nn.Module, uri: str, strict: bool = True) -> None:
    """Load ``<uri>/model.safetensors`` into ``model`` (local or remote folder)."""
    path = storage.join(uri, WEIGHTS)
    if not storage.exists(path):
        raise FileNotFoundError(f"no {WEIGHTS} in {uri}")
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, WEIGHTS)
        with open(local, "wb") as f:
            f.write(storage.read_bytes(path))
        try:
            missing, unexpected = load_model(model, local, strict=strict)
        except RuntimeError as err:  # shapes or names differ: say which file, and the first differences
            detail = "; ".join(line.strip() for line in str(err).splitlines()[:3])
            raise RuntimeError(f"{path} does not fit this {type(model).__name__} (written for another "
                               f"configuration?): {detail}") from err
    if missing or unexpected:
        log.info("loaded %s with %d missing and %d unexpected keys", path, len(missing), len(unexpected))


def read_config(uri: str) -> dict:
    path = storage.join(uri, CONFIG)
    try:
        return json.loads(storage.read_text(path))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no {CONFIG} in {uri}: not a vlaforge model folder") from err


def save_checkpoint(ckpt_dir: str, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict, config: dict, ema: dict[str, torch.Tensor] | None = None,
                    keep: int = 2) -> str:
    name = f"step_{step:08d}"
    target = storage.join(ckpt_dir, name)
    with tempfile.TemporaryDirectory(prefix="vlaforge-ckpt-") as tmp:
        save_weights(model, tmp)
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.items()}, os.path.join(tmp, "ema.safetensors"))
        buf = io.BytesIO()
        torch.save(optimizer.state_dict(), buf)
        with open(os.path.join(tmp, "optimizer.pt"), "wb") as f:
            f.write(buf.getvalue())
        with open(os.path.join(tmp, CONFIG), "w") as f:
            json.dump(config, f, indent=2)
        with open(os.path.join(tmp, "trainer_state.json"), "w") as f:
            json.dump(state, f, indent=2)
        storage.upload_dir(tmp, target)
    storage.write_text(storage.join(ckpt_dir, LATEST), json.dumps({"step": step, "path": name}))
    _prune(ckpt_dir, keep)
    log.info("checkpoint step %d -> %s", step, target)
    return target


def _prune(ckpt_dir: str, keep: int) -> None:
    names = [n for n in storage.listdir(ckpt_dir) if n.startswith("step_")]
    for old in sorted(names)[:-keep] if keep > 0 else []:
        fs, path = storage.filesystem(storage.join(ckpt_dir, old))
        fs.rm(path, recursive=True)


def latest_checkpoint(ckpt_dir: str) -> str | None:
    """The newest complete checkpoint folder under ``ckpt_dir``, or None."""
    pointer = storage.join(ckpt_dir, LATEST)
    if not storage.exists(pointer):
        return None
    info = json.loads(storage.read_text(pointer))
    return storage.join(ckpt_dir, info["path"])


def load_checkpoint(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict | None]:
    """Restore model and optimizer from ``path``; returns the trainer state and EMA weights (if any)."""
    load_weights(model, path)
    opt_state = torch.load(io.BytesIO(storage.read_bytes(storage.join(path, "optimizer.pt"))),
                           weights_only=True, map_location="cpu")
    optimizer.load_state_dict(opt_state)
    state = json.loads(storage.read_text(storage.join(path, "trainer_state.json")))
    ema = None
    ema_uri = storage.join(path, "ema.safetensors")
    if storage.exists(ema_uri):
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(storage.read_bytes(ema_uri))
            f.flush()
            ema = load_file(f.name)
    return state, ema
