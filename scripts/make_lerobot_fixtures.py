"""Write the LeRobot v3.0 test datasets with the real ``lerobot-dataset`` package (module ``ledataset``).

Run by ``scripts/make_lerobot_fixtures.sh`` inside its own virtual environment (the package imports
torch and torchvision without declaring them; they do not load against vlaforge's CPU torch). Output,
committed under ``tests/robotics/data/lerobot_v30/``:

- ``so100_mixed/``: a v3.0 dataset written through ``LeRobotDataset.create`` / ``add_frame`` /
  ``save_episode`` / ``finalize``: 3 episodes of 2 tasks in one data parquet file, camera
  ``observation.images.top`` stored as images in the parquet, ``observation.images.wrist`` as video
  (every episode in one mp4, located by per-episode from/to timestamps).
- ``so100_mixed.expected.npz``: the arrays handed to ``add_frame`` (per episode: state, action, the
  frames of both cameras, the task text), which the import must give back.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from ledataset.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset

FPS = 10
LENGTHS = (8, 11, 9)
TASKS = ("pick up the red cube", "open the top drawer", "pick up the red cube")
TOP_SHAPE = (24, 32, 3)  # stored as PNG images inside the data parquet
WRIST_SHAPE = (64, 64, 3)  # stored as AV1 video


def frames(shape: tuple, length: int, episode: int, camera: int) -> np.ndarray:
    """Flat colours that say which episode and step a frame is (video coding keeps flat areas)."""
    t = np.arange(length)
    out = np.zeros((length, *shape), np.uint8)
    out[..., 0] = (16 + t * 20)[:, None, None]
    out[..., 1] = 40 + 60 * episode
    out[..., 2] = 80 + 100 * camera
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder receiving so100_mixed/ and so100_mixed.expected.npz")
    parser.add_argument("--repeat", type=int, default=1,
                        help="write the 3 episodes this many times (a larger dataset for bench/lerobot_import.py)")
    args = parser.parse_args()
    out = Path(args.out)
    lengths, tasks = LENGTHS * args.repeat, TASKS * args.repeat
    root = out / "so100_mixed"
    if root.exists():
        shutil.rmtree(root)
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"joint{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (4,), "names": ["dx", "dy", "dz", "grip"]},
        "observation.images.top": {"dtype": "image", "shape": TOP_SHAPE, "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": "video", "shape": WRIST_SHAPE,
                                     "names": ["height", "width", "channels"]},
    }
    dataset = LeRobotDataset.create("vlaforge/so100_mixed", fps=FPS, features=features, root=root,
                                    robot_type="so100", use_videos=True)
    rng = np.random.default_rng(0)
    expected = {}
    for ep, (length, task) in enumerate(zip(lengths, tasks)):
        state = rng.normal(size=(length, 6)).astype(np.float32)
        action = rng.uniform(-1, 1, (length, 4)).astype(np.float32)
        top, wrist = frames(TOP_SHAPE, length, ep % 3, 0), frames(WRIST_SHAPE, length, ep % 3, 1)
        for t in range(length):
            dataset.add_frame({"observation.state": state[t], "action": action[t], "task": task,
                               "observation.images.top": top[t], "observation.images.wrist": wrist[t]})
        dataset.save_episode()
        expected.update({f"{ep}/state": state, f"{ep}/action": action, f"{ep}/top": top, f"{ep}/wrist": wrist,
                         f"{ep}/task": np.array(task)})
    dataset.finalize()
    shutil.rmtree(root / "images", ignore_errors=True)  # the package's temporary PNGs (already in the parquet)
    np.savez_compressed(out / "so100_mixed.expected.npz", codebase_version=np.array(CODEBASE_VERSION), **expected)
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"wrote {root} ({CODEBASE_VERSION}, {len(lengths)} episodes, {size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
