"""Image-caption data (the caption_data stage): rendered scenes captioned from the true scene state,
or existing img2dataset-layout shards validated and imported.

Rendered scenes: each scene is a task reset with ``episode_seed(task, index, "caption")``, then
advanced by the noisy scripted expert for a random number of steps so that the arm is shown in
many poses, before and after the task is done. The caption says what is where: view, gripper,
the task's object and goal with their offsets in centimetres as seen from the robot (right/left,
beyond/in front of, above/below), the instruction and whether it is achieved.

Shards follow the img2dataset layout (docs/reference/formats.md): ``<key>.jpg``, ``<key>.txt`` and
``<key>.json`` (``uid``, ``caption``, ``width``, ``height``, ``task``, ``camera``) plus
``manifest.jsonl``.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from vlaforge import storage
from vlaforge.data.shards import MANIFEST, ShardError, ShardInfo, ShardWriter, iter_samples, read_manifest
from vlaforge.sim.baselines import ExpertPolicy
from vlaforge.sim.env import check_cameras, episode_seed, make_env, step_seed, task_spec

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
VIEWS = {"corner": "corner view", "corner2": "second corner view", "corner3": "third corner view",
         "topview": "top view", "behindGripper": "view from behind the gripper",
         "gripperPOV": "view from the gripper"}


@dataclass
class CaptionConfig:
    tasks: list[str] = field(default_factory=lambda: ["reach-v3", "push-v3"])
    scenes_per_task: int = 8
    first_scene: int = 0  # index (and so seed) of every task's first scene; a fan-out slice starts later
    cameras: list[str] = field(default_factory=lambda: ["corner", "topview"])
    image_size: int = 64
    image_format: str = "jpg"  # jpg or png
    samples_per_shard: int = 256
    max_expert_steps: int = 100  # a scene shows the arm after 0..max_expert_steps expert steps
    action_noise: float = 0.1
    offsets: int = 2  # a relation names at most this many of the largest per-axis offsets (1-3)
    min_offset_cm: float = 2.0  # offsets below this on an axis are not named


def relation(a: np.ndarray, b: np.ndarray, offsets: int = CaptionConfig.offsets,
             min_offset_cm: float = CaptionConfig.min_offset_cm) -> str:
    """Where point ``a`` lies relative to ``b`` as seen from the robot, e.g. ``12 cm beyond and 4 cm
    left of`` (beyond: farther from the robot): the (at most ``offsets``) largest per-axis offsets of
    ``min_offset_cm`` or more, rounded to the centimetre."""
    d = (np.asarray(a, float) - np.asarray(b, float)) * 100
    words = (("right of", "left of"), ("beyond", "in front of"), ("above", "below"))
    parts = [(abs(d[i]), f"{round(abs(d[i]))} cm {words[i][0] if d[i] > 0 else words[i][1]}")
             for i in range(3) if abs(d[i]) >= min_offset_cm]
    parts = [p for _, p in sorted(parts, reverse=True)[:offsets]]
    return " and ".join(parts) if parts else "right at"


def describe_scene(task: str, camera: str, state: np.ndarray, success: bool, offsets: int = CaptionConfig.offsets,
                   min_offset_cm: float = CaptionConfig.min_offset_cm) -> str:
    """A caption from the true state: Meta-World's flat observation (hand xyz, gripper opening,
    object position at [4:7], goal position at [36:39]) and whether the task is achieved; the
    relations as :func:`relation` words them."""
    spec = task_spec(task)
    hand, grip, obj, goal = state[0:3], float(state[3]), state[4:7], state[36:39]
    gripper = "open" if grip > 0.6 else "closed" if grip < 0.4 else "half open"
    text = [f"{VIEWS[camera].capitalize()} of a red robot arm over a wooden table, its gripper {gripper}."]
    if spec.object:
        text.append(f"The {spec.object} is {relation(obj, hand, offsets, min_offset_cm)} the gripper.")
    if spec.goal:
        anchor = f"the {spec.object}" if spec.object else "the gripper"
        text.append(f"The {spec.goal} is {relation(goal, obj if spec.object else hand, offsets, min_offset_cm)} {anchor}.")
    text.append(f"Task: {spec.instruction}; {'done' if success else 'not done yet'}.")
    return " ".join(text)


def encode_image(frame: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        Image.fromarray(frame).save(buf, format="JPEG", quality=90)
    else:
        Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _check(cfg: CaptionConfig) -> None:
    if not cfg.tasks:
        raise ValueError("captions.tasks is empty")
    for task in cfg.tasks:
        task_spec(task)
    check_cameras(cfg.cameras)
    if cfg.image_format not in ("jpg", "png"):
        raise ValueError(f"captions.image_format must be jpg or png, got '{cfg.image_format}'")
    if cfg.scenes_per_task < 1:
        raise ValueError(f"captions.scenes_per_task must be >= 1, got {cfg.scenes_per_task}")
    if cfg.first_scene < 0:
        raise ValueError(f"captions.first_scene must be >= 0, got {cfg.first_scene}")
    if cfg.offsets not in (1, 2, 3):
        raise ValueError(f"captions.offsets must be 1, 2 or 3 (axes named per relation), got {cfg.offsets}")
    if cfg.min_offset_cm < 0:
        raise ValueError(f"captions.min_offset_cm must be >= 0, got {cfg.min_offset_cm}")


def make_caption_data(cfg: CaptionConfig, out_uri: str) -> dict:
    """Render ``scenes_per_task`` scenes of every task from every camera into caption shards."""
    _check(cfg)
    expert = ExpertPolicy(noise=cfg.action_noise)
    counts: dict[str, int] = {}
    started = time.perf_counter()
    with ShardWriter(out_uri, "captions", cfg.samples_per_shard) as writer:
        for task in cfg.tasks:
            env = make_env(task, [], cfg.image_size)  # render only the final frame of each scene
            for index in tqdm(range(cfg.first_scene, cfg.first_scene + cfg.scenes_per_task), desc=f"caption_data {task}", unit="scene"):
                seed = episode_seed(task, index, "caption")
                obs = env.reset(seed)
                success, done = False, False
                steps = np.random.default_rng(seed).integers(0, cfg.max_expert_steps + 1)
                while env.steps < steps and not done:
                    action = expert.predict([[obs]], seed=step_seed(seed, env.steps))[0][0]
                    obs, success, done = env.step(action)
                for cam in cfg.cameras:
                    key = f"{task}-{index:06d}-{cam}"
                    caption = describe_scene(task, cam, obs.state, success, cfg.offsets, cfg.min_offset_cm)
                    meta = {"uid": key, "caption": caption, "width": cfg.image_size,
                            "height": cfg.image_size, "task": task, "camera": cam, "seed": seed}
                    writer.write({"__key__": key, cfg.image_format: encode_image(env.render(cam), cfg.image_format),
                                  "txt": caption.encode(), "json": json.dumps(meta).encode()})
            counts[task] = cfg.scenes_per_task * len(cfg.cameras)
    shards = writer.shards
    total, elapsed = sum(counts.values()), time.perf_counter() - started
    log.info("wrote %d captioned images in %d shards to %s in %.1f s (%.1f images/s)", total, len(shards),
             out_uri, elapsed, total / max(elapsed, 1e-9))
    return {"num_samples": total, "num_shards": len(shards), "per_task": counts}


def _shards(uri: str) -> list[ShardInfo]:
    """The manifest's shards, or (img2dataset writes no manifest) every ``*.tar`` in the folder."""
    if storage.exists(storage.join(uri, MANIFEST)):
        return read_manifest(uri)
    names = [n[:-4] for n in storage.listdir(uri) if n.endswith(".tar")]
    if not names:
        raise ShardError(f"no {MANIFEST} and no .tar shards in {uri}")
    return [ShardInfo(storage.join(uri, n + ".tar"), n, -1) for n in names]


def _check_sample(sample: dict, where: str) -> None:
    images = [e for e in IMAGE_EXTS if e in sample]
    if not images:
        raise ShardError(f"{where}: no image (expected one of .{', .'.join(IMAGE_EXTS)}); "
                         f"has {', '.join(sorted(k for k in sample if k != '__key__'))}")
    try:
        with Image.open(io.BytesIO(sample[images[0]])) as img:
            img.load()
    except Exception as err:  # PIL raises many types for undecodable data
        raise ShardError(f"{where}: image .{images[0]} does not decode: {err}") from err
    meta = {}
    if "json" in sample:
        try:
            meta = json.loads(sample["json"])
        except ValueError as err:
            raise ShardError(f"{where}: .json is not valid JSON: {err}") from err
    caption = sample["txt"].decode("utf-8", "replace") if "txt" in sample else meta.get("caption", "")
    if not str(caption).strip():
        raise ShardError(f"{where}: no caption (empty or missing .txt and no 'caption' in .json)")


def validate_caption_shards(uri: str) -> list[ShardInfo]:
    """Check every sample of the img2dataset-layout shards at ``uri`` (local or s3://): an image that
    decodes and a caption; the manifest's counts, when there is one, must match. Errors name the
    shard and the key. Returns the shards with their true sample counts."""
    checked = []
    for shard in _shards(uri):
        count = 0
        for sample in iter_samples(shard.uri):
            _check_sample(sample, f"shard {shard.uri}, key '{sample['__key__']}'")
            count += 1
        if shard.num_samples not in (-1, count):
            raise ShardError(f"shard {shard.uri}: {MANIFEST} says {shard.num_samples} samples, it holds {count}")
        if count == 0:
            raise ShardError(f"shard {shard.uri} holds no samples")
        checked.append(ShardInfo(shard.uri, shard.name, count))
    return checked


def import_caption_shards(source_uri: str, out_uri: str) -> dict:
    """Validate the shards at ``source_uri``, then copy them and a manifest to ``out_uri``."""
    shards = validate_caption_shards(source_uri)
    for shard in tqdm(shards, desc="caption_data import", unit="shard"):
        storage.write_bytes(storage.join(out_uri, shard.name + ".tar"), storage.read_bytes(shard.uri))
    storage.write_text(storage.join(out_uri, MANIFEST), "".join(
        json.dumps({"shard": s.name, "num_sequences": s.num_samples}) + "\n" for s in shards))
    total = sum(s.num_samples for s in shards)
    log.info("imported %d captioned images in %d shards from %s", total, len(shards), source_uri)
    return {"num_samples": total, "num_shards": len(shards), "source_uri": source_uri}
