"""What a stage output or input holds, checked before a stage does any work.

Every artifact leaves a marker saying what kind it is: ``config.json``'s ``kind`` for models (also
inside ``checkpoints/`` while training runs), ``tokenize_stats.json``, ``episodes.jsonl``,
``preprocessing_config.yaml``, caption ``manifest.jsonl``, ``<model>/<Task>/rollouts/`` results,
``report.html`` (:func:`artifact_kind`).

- :func:`check_output`: the output location is writable (local or ``s3://``, probed with a small file
  that is removed again) and empty, or holds this stage's own artifact: a training stage and sim_eval
  resume it, any stage replaces it when the existing-output policy is ``overwrite``. Another stage's
  artifact, or files that are no artifact, are never written over.
- :func:`check_input` / :func:`check_policy`: an input is the kind of artifact the stage reads and its
  files are complete (:mod:`vlaforge.artifact_files`).

The existing-output policy comes from the CLI flags ``--resume`` / ``--overwrite`` or, for the
components, from ``$VLAFORGE_EXISTING_OUTPUT`` (``resume``, the default, or ``overwrite``).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import tempfile

from vlaforge import storage
from vlaforge.artifact_files import IncompleteFileError, check_safetensors, check_shards, check_zip

log = logging.getLogger(__name__)
EXISTING_ENV = "VLAFORGE_EXISTING_OUTPUT"
POLICIES = ("resume", "overwrite")
UNKNOWN = "unknown"
TRAINING = "training"  # checkpoints whose model config cannot be read yet: any training stage's own
KINDS = {
    "tokenized": "a tokenized dataset (tokenize)",
    "llm": "an LLM model (llm_pretrain)",
    "vlm": "a VLM model (vlm_pretrain)",
    "hf_vlm": "a Hugging Face VLM model (hf_vlm)",
    "vla": "a VLA policy bundle (vla_finetune)",
    "captions": "image-caption shards (caption_data)",
    "episodes": "raw robot episodes (record_demos, lerobot_import)",
    "robotics": "robotics training shards (preprocess_robotics)",
    "rollouts": "rollout results (sim_eval)",
    "report": "an analysis report (step_analysis)",
    "training": "an unfinished training run (checkpoints only)",
}
STAGE_KINDS = {"tokenize": "tokenized", "llm_pretrain": "llm", "vlm_pretrain": "vlm", "hf_vlm": "hf_vlm",
               "vla_finetune": "vla", "caption_data": "captions", "record_demos": "episodes",
               "lerobot_import": "episodes", "preprocess_robotics": "robotics", "sim_eval": "rollouts",
               "step_analysis": "report"}
RESUMABLE = {"llm", "vlm", "hf_vlm", "vla", "rollouts"}  # training checkpoints; sim_eval's pending episodes
MODEL_KINDS = {"llm", "vlm", "hf_vlm", "vla"}
_MARKERS = [("tokenize_stats.json", "tokenized"), ("episodes.jsonl", "episodes"),
            ("recording_report.json", "episodes"), ("preprocessing_config.yaml", "robotics"),
            ("splits.json", "robotics"), ("report.html", "report"), ("tables.md", "report"),
            ("manifest.jsonl", "captions"),
            # folders a stage writes before its marker file: the partial output of a run that failed
            ("episodes", "episodes"), ("train", "robotics")]


class ArtifactError(ValueError):
    """An output or input location holds the wrong thing or cannot be used; the message names it."""


def label(kind: str) -> str:
    return KINDS.get(kind, f"a '{kind}' artifact")


def _entries(uri: str) -> list[str] | None:
    """Names directly under ``uri``; None when nothing is there; raises when ``uri`` is a file."""
    if not storage.exists(uri):
        return None
    try:
        return storage.listdir(uri)
    except FileNotFoundError as err:
        raise ArtifactError(f"{uri} is a file, not a folder") from err


def _config_kind(config_uri: str) -> str:
    try:
        kind = json.loads(storage.read_text(config_uri)).get("kind")
    except (ValueError, AttributeError, UnicodeDecodeError) as err:
        raise ArtifactError(f"{config_uri}: not a readable artifact config ({err})") from err
    return str(kind) if kind else UNKNOWN


def artifact_kind(uri: str) -> str | None:
    """The kind of artifact at ``uri`` (a key of :data:`KINDS`), :data:`UNKNOWN` for other files, None if empty."""
    entries = _entries(uri)
    if not entries:
        return None
    names = set(entries)
    if "config.json" in names:
        return _config_kind(storage.join(uri, "config.json"))
    if "checkpoints" in names:  # a training stage that has not finished yet
        latest = storage.join(uri, "checkpoints", "latest.json")
        if storage.exists(latest):
            step_config = storage.join(uri, "checkpoints", json.loads(storage.read_text(latest))["path"], "config.json")
            if storage.exists(step_config):
                return _config_kind(step_config)
        return TRAINING
    if "tokenizer" in names and "train" in names:
        return "tokenized"
    for marker, kind in _MARKERS:
        if marker in names:
            return kind
    if any(name.endswith(".tar") for name in names):
        return "captions"
    fs, path = storage.filesystem(uri)
    if fs.glob(posixpath.join(path, "*", "*", "rollouts")) or fs.glob(posixpath.join(path, "*", "*", "*", "rollouts")):
        return "rollouts"
    return UNKNOWN


def existing_policy(explicit: str | None = None) -> str:
    policy = explicit or os.environ.get(EXISTING_ENV) or "resume"
    if policy not in POLICIES:
        raise ArtifactError(f"${EXISTING_ENV} must be one of {', '.join(POLICIES)}, got {policy!r}")
    return policy


def probe_writable(uri: str) -> None:
    """Write and remove a small file in ``uri``; local folders created for the probe are removed again."""
    try:
        if storage.is_remote(uri):
            probe = storage.join(uri, ".vlaforge-write-probe")
            storage.write_bytes(probe, b"")
            fs, path = storage.filesystem(probe)
            fs.rm(path)
            return
        missing = []
        folder = os.path.abspath(uri)
        while not os.path.exists(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        os.makedirs(uri, exist_ok=True)
        try:
            with tempfile.NamedTemporaryFile(dir=uri, prefix=".vlaforge-write-probe-"):
                pass
        finally:
            for created in missing:
                os.rmdir(created)
    except (OSError, RuntimeError) as err:
        cause = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.strerror else err
        raise ArtifactError(f"output {uri} is not writable ({cause})") from err


def _clear(uri: str) -> None:
    for name in storage.listdir(uri):
        fs, path = storage.filesystem(storage.join(uri, name))
        fs.rm(path, recursive=True)


def check_output(uri: str, stage: str, existing: str | None = None) -> str:
    """Check the output ``uri`` of ``stage`` before it runs; returns what happens: new, resume or overwrite.

    In a distributed run rank 0 checks (and clears, for ``overwrite``); the other ranks only read.
    """
    policy = existing_policy(existing)
    if int(os.environ.get("RANK", "0")):
        return policy
    want = STAGE_KINDS[stage]
    kind = artifact_kind(uri)
    if kind is None:
        probe_writable(uri)
        return "new"
    if kind == UNKNOWN:
        shown = ", ".join(storage.listdir(uri)[:5])
        raise ArtifactError(f"output {uri} is not empty and holds no vlaforge artifact ({shown}); "
                            f"{stage} writes only into an empty folder or over its own output")
    if kind == TRAINING and want in MODEL_KINDS:
        kind = want
    if kind != want:
        raise ArtifactError(f"output {uri} holds {label(kind)}; {stage} never writes over another stage's "
                            f"artifact: choose another output")
    probe_writable(uri)
    if policy == "overwrite":
        log.warning("%s: replacing %s at %s (overwrite)", stage, label(kind), uri)
        _clear(uri)
        return "overwrite"
    if want not in RESUMABLE:
        raise ArtifactError(f"output {uri} already holds {label(kind)} from an earlier run; pass --overwrite "
                            f"(components: {EXISTING_ENV}=overwrite) to replace it, or choose another output")
    log.info("%s: %s already holds %s; resuming it", stage, uri, label(kind))
    return "resume"


def _require(uri: str, *names: str) -> None:
    for name in names:
        if not storage.exists(storage.join(uri, name)):
            raise IncompleteFileError(f"{storage.join(uri, name)}: missing (incomplete artifact)")


def _check_complete(uri: str, kind: str) -> None:
    if kind in MODEL_KINDS:
        weights_dir = storage.join(uri, "hf") if kind == "hf_vlm" else uri  # hf_vlm: Hugging Face files
        _require(uri, "hf" if kind == "hf_vlm" else "model.safetensors")
        if kind == "vla":
            _require(uri, "normalizer.json", "preprocessing_config.yaml")
        for name in storage.listdir(weights_dir):
            if name.endswith(".safetensors"):
                check_safetensors(storage.join(weights_dir, name))
    elif kind == "tokenized":
        _require(uri, "tokenizer")
        check_shards(storage.join(uri, "train"))
        check_shards(storage.join(uri, "val"))
    elif kind == "robotics":
        _require(uri, "stats.json", "preprocessing_config.yaml")
        check_shards(storage.join(uri, "train"))
        if storage.exists(storage.join(uri, "val", "manifest.jsonl")):
            check_shards(storage.join(uri, "val"))
    elif kind == "captions" and storage.exists(storage.join(uri, "manifest.jsonl")):
        check_shards(uri)
    elif kind == "episodes":
        from vlaforge.robotics.episodes import read_index

        for meta in read_index(uri):
            if not storage.exists(meta.uri):
                raise IncompleteFileError(f"{meta.uri}: episode listed in episodes.jsonl is missing")
            check_zip(meta.uri)


def check_input(uri: str, kinds: str | tuple[str, ...], role: str) -> str:
    """``uri`` holds one of ``kinds`` with complete files (``role`` names it in messages); returns its kind."""
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    wanted = " or ".join(label(k) for k in kinds)
    kind = artifact_kind(uri)
    if kind is None:
        raise FileNotFoundError(f"{role} {uri}: nothing there (expected {wanted})")
    if kind not in kinds:
        held = "files that are no vlaforge artifact" if kind == UNKNOWN else label(kind)
        raise ArtifactError(f"{role} {uri} holds {held}, expected {wanted}")
    _check_complete(uri, kind)
    return kind


def check_policy(spec: str) -> None:
    """A policy spec's bundle is a complete VLA bundle; baselines and ``grpc://`` servers need no check."""
    path = spec.partition("?")[0]
    if not path.startswith(("baseline:", "grpc://")):
        check_input(path, "vla", "policy")
