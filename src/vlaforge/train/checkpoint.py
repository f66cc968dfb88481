"""Checkpoints: safetensors weights + JSON config + optimizer state + trainer position.

A checkpoint folder ``<dir>/step_<N>/`` is complete before ``<dir>/latest.json`` points at it, so a
restarted pod resumes from the newest complete one. Optimizer state is read with
``torch.load(weights_only=True)``: never unpickle arbitrary objects from an artifact store.

Under FSDP a checkpoint is sharded (:func:`save_sharded`): each rank writes its own shards of the model,
optimizer and EMA through ``torch.distributed.checkpoint`` (``dcp/``), so it loads on any world size.
The final model of a stage is always one ``model.safetensors`` (:func:`save_full_weights`).

Crash tests set ``VLAFORGE_KILL_IN_CHECKPOINT=<step>``: a process then SIGKILLs itself right after
uploading its first file of that step's checkpoint, a deterministic point in the middle of the write.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from vlaforge import storage

log = logging.getLogger(__name__)
LATEST = "latest.json"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
SHARDS = "dcp"  # the torch.distributed.checkpoint folder of a sharded checkpoint
KILL_IN_CHECKPOINT = "VLAFORGE_KILL_IN_CHECKPOINT"  # crash tests (module docstring)


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
        _write_meta(tmp, state, config)
        _upload(tmp, {n: storage.join(target, n) for n in os.listdir(tmp)}, step)
    _move_latest(ckpt_dir, step, name, keep)
    log.info("checkpoint step %d -> %s", step, target)
    return target


def _upload(local_dir: str, files: dict[str, str], step: int) -> None:
    """Upload ``{local file name: uri}`` in name order, each file atomically (see KILL_IN_CHECKPOINT)."""
    for i, name in enumerate(sorted(files)):
        storage.upload_file(os.path.join(local_dir, name), files[name])
        if i == 0 and os.environ.get(KILL_IN_CHECKPOINT) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)


def _write_meta(local_dir: str, state: dict, config: dict) -> None:
    with open(os.path.join(local_dir, CONFIG), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(local_dir, "trainer_state.json"), "w") as f:
        json.dump(state, f, indent=2)


def _move_latest(ckpt_dir: str, step: int, name: str, keep: int) -> None:
    storage.write_text(storage.join(ckpt_dir, LATEST), json.dumps({"step": step, "path": name}))
    _prune(ckpt_dir, keep)


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


def is_sharded(path: str) -> bool:
    return storage.exists(storage.join(path, SHARDS, ".metadata"))


def _sharded_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   ema: dict[str, torch.Tensor] | None) -> dict:
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    return {"model": model_sd, "optim": optim_sd, **({"ema": ema} if ema is not None else {})}


def save_sharded(ckpt_dir: str, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 state: dict, config: dict, ema: dict[str, torch.Tensor] | None = None, keep: int = 2) -> str:
    """Every rank writes its shards to ``step_<N>/dcp/``; rank 0 moves ``latest.json`` once all are written."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    name = f"step_{step:08d}"
    target = storage.join(ckpt_dir, name)
    rank = dist.get_rank()
    failure: Exception | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="vlaforge-ckpt-") as tmp:
            # Each rank writes locally (rank 0 also the plan's .metadata), then uploads its own files.
            dcp.save(_sharded_state(model, optimizer, ema), storage_writer=dcp.FileSystemWriter(tmp))
            files = {n: storage.join(target, SHARDS, n) for n in os.listdir(tmp)
                     if n.endswith(".distcp") or (rank == 0 and n == ".metadata")}
            if rank == 0:
                _write_meta(tmp, state, config)
                files.update({n: storage.join(target, n) for n in (CONFIG, "trainer_state.json")})
            _upload(tmp, files, step)
    except Exception as err:  # noqa: BLE001 - agreed on below, so that every rank retries together
        failure = err
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    ok = torch.tensor([0.0 if failure else 1.0], device=device)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    if not ok.item():  # the pointer stays on the previous checkpoint
        raise failure or RuntimeError(f"writing {target} failed on another rank")
    if rank == 0:
        _move_latest(ckpt_dir, step, name, keep)
        log.info("sharded checkpoint step %d -> %s", step, target)
    dist.barrier()
    return target


def load_sharded(path: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 ema: dict[str, torch.Tensor] | None) -> dict:
    """Restore a sharded checkpoint into an FSDP ``model`` (any world size); returns the trainer state."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_state_dict

    sharded = _sharded_state(model, optimizer, ema)
    with storage.local_dir(storage.join(path, SHARDS)) as local:
        dcp.load(sharded, storage_reader=dcp.FileSystemReader(local))
    set_state_dict(model, optimizer, model_state_dict=sharded["model"], optim_state_dict=sharded["optim"])
    if ema is not None and "ema" in sharded:
        for key, value in sharded["ema"].items():
            ema[key].copy_(value)
    return json.loads(storage.read_text(storage.join(path, "trainer_state.json")))


def full_state_dict(model: torch.nn.Module, tensors: dict[str, torch.Tensor] | None = None) -> dict:
    """Unsharded CPU copies of ``tensors`` (default: the model's state dict); collective under FSDP.

    Names of tied parameters are kept once, the one safetensors' ``save_model`` keeps.
    """
    from torch.distributed.tensor import DTensor

    tensors = model.state_dict() if tensors is None else tensors
    full = {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().cpu() for k, v in tensors.items()}
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name.replace("_checkpoint_wrapped_module.", ""))
    for names in groups.values():
        for dropped in sorted(names)[1:]:
            full.pop(dropped, None)
    return full


def save_full_weights(full: dict[str, torch.Tensor], local_dir: str) -> None:
    save_file({k: v.contiguous() for k, v in full.items()}, os.path.join(local_dir, WEIGHTS),
              metadata={"format": "pt"})


def with_retries(write: Callable[[], object], what: str, attempts: int, first_delay_s: float = 1.0) -> bool:
    """Run ``write`` up to ``attempts`` times with exponential backoff; False (logged) if every try failed."""
    for attempt in range(1, attempts + 1):
        try:
            write()
            return True
        except Exception as err:  # noqa: BLE001 - any storage failure: retry, then go on training
            if attempt == attempts:
                log.error("%s failed %d times (%s: %s); training goes on, the previous checkpoint stays the "
                          "newest", what, attempts, type(err).__name__, err)
                return False
            delay = first_delay_s * 2 ** (attempt - 1)
            log.warning("%s failed (%s: %s); retry %d/%d in %.0f s", what, type(err).__name__, err, attempt,
                        attempts - 1, delay)
            time.sleep(delay)
    return False
