"""Tiny synthetic raw-episode and LeRobot datasets for the robotics tests (numpy only, no simulator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vlaforge.robotics.episodes import EpisodeWriter

# A LeRobot v3.0 dataset written by the real lerobot-dataset package (scripts/make_lerobot_fixtures.sh).
LEROBOT_V30 = Path(__file__).parent / "data" / "lerobot_v30" / "so100_mixed"


def synthetic_episode(rng: np.random.Generator, length: int, cameras=("corner", "behindGripper"),
                      size: int = 16, action_dim: int = 4, proprio_dim: int = 4) -> dict:
    """Frames whose colour encodes the step (so tests can tell which frame a sample holds)."""
    t = np.arange(length)
    images = {}
    for c, cam in enumerate(cameras):
        frames = np.zeros((length, size, size, 3), np.uint8)
        frames[..., 0] = (t * 8 % 256)[:, None, None]
        frames[..., 1] = 40 + 60 * c
        frames[..., 2] = rng.integers(0, 20)
        images[cam] = frames
    return {"images": images,
            "proprio": rng.normal(0.5, 0.2, (length, proprio_dim)).astype(np.float32) + t[:, None] * 0.01,
            "action": rng.uniform(-1, 1, (length, action_dim)).astype(np.float32),
            "success": t >= length - 3}


def write_dataset(out, n_episodes: int = 6, lengths=(9, 14), seed: int = 0, prefix: str = "reach-v3",
                  **episode_kwargs) -> str:
    rng = np.random.default_rng(seed)
    writer = EpisodeWriter(str(out))
    for i in range(n_episodes):
        ep = synthetic_episode(rng, int(rng.integers(lengths[0], lengths[1] + 1)), **episode_kwargs)
        writer.write(f"{prefix}-{i:06d}", prefix, f"do {prefix} number {i}", ep["images"], ep["proprio"],
                     ep["action"], ep["success"], seed=i)
    writer.close()
    return str(out)


def write_lerobot_dataset(root, n_episodes: int = 2, length: int = 12, state_dim: int = 6, action_dim: int = 4,
                          fps: int = 10, version: str = "v2.1", video_camera: str | None = "wrist",
                          seed: int = 0) -> dict:
    """A tiny LeRobot v2.x dataset: one camera stored as PNG bytes in the parquet ("top") and, when
    ``video_camera`` is set, one as an mp4 per episode. Returns the arrays written, per episode."""
    import io
    import json

    import av
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(seed)
    size = 32
    features = {"observation.state": {"dtype": "float32", "shape": [state_dim]},
                "action": {"dtype": "float32", "shape": [action_dim]},
                "observation.images.top": {"dtype": "image", "shape": [size, size, 3]},
                "episode_index": {"dtype": "int64", "shape": [1]}, "frame_index": {"dtype": "int64", "shape": [1]},
                "timestamp": {"dtype": "float32", "shape": [1]}, "task_index": {"dtype": "int64", "shape": [1]}}
    if video_camera:
        features[f"observation.images.{video_camera}"] = {"dtype": "video", "shape": [size, size, 3]}
    info = {"codebase_version": version, "fps": fps, "chunks_size": 1000, "total_episodes": n_episodes,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": features}
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    tasks = ["pick up the cube", "open the drawer"]
    (root / "meta" / "tasks.jsonl").write_text("".join(json.dumps({"task_index": i, "task": t}) + "\n"
                                                      for i, t in enumerate(tasks)))
    out, lines = [], []
    for ep in range(n_episodes):
        t = np.arange(length)
        state = rng.normal(size=(length, state_dim)).astype(np.float32)
        action = rng.normal(size=(length, action_dim)).astype(np.float32)
        top = np.zeros((length, size, size, 3), np.uint8)
        top[..., 0] = (t * 20)[:, None, None]
        top[..., 1] = 100 + ep
        pngs = []
        for frame in top:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG")
            pngs.append({"bytes": buf.getvalue(), "path": f"frame_{len(pngs):06d}.png"})
        order = rng.permutation(length)  # rows stored out of order: the importer sorts by frame_index
        table = pa.table({
            "observation.state": pa.array(list(state[order]), type=pa.list_(pa.float32(), state_dim)),
            "action": pa.array(list(action[order]), type=pa.list_(pa.float32(), action_dim)),
            "observation.images.top": pa.array([pngs[i] for i in order]),
            "episode_index": pa.array(np.full(length, ep)), "frame_index": pa.array(t[order]),
            "timestamp": pa.array((t[order] / fps).astype(np.float32)),
            "task_index": pa.array(np.full(length, ep % 2)), "index": pa.array(t[order] + ep * length)})
        path = root / "data" / "chunk-000" / f"episode_{ep:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        arrays = {"state": state, "action": action, "top": top, "task": tasks[ep % 2]}
        if video_camera:
            wrist = np.zeros((length, size, size, 3), np.uint8)
            wrist[..., 2] = (t * 20)[:, None, None]
            vpath = root / "videos" / "chunk-000" / f"observation.images.{video_camera}" / f"episode_{ep:06d}.mp4"
            vpath.parent.mkdir(parents=True, exist_ok=True)
            with av.open(str(vpath), "w") as container:
                stream = container.add_stream("libx264", rate=fps)
                stream.width = stream.height = size
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "0"}
                for frame in wrist:
                    container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                container.mux(stream.encode())
            arrays[video_camera] = wrist
        lines.append({"episode_index": ep, "tasks": [tasks[ep % 2]], "length": length})
        out.append(arrays)
    (root / "meta" / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return {"root": str(root), "episodes": out}
