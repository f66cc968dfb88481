"""LeRobot v3.0 import on a dataset written by the real ``lerobot-dataset`` package.

The fixture ``data/lerobot_v30/so100_mixed`` (and the arrays handed to ``add_frame``, in
``so100_mixed.expected.npz``) was written once by ``scripts/make_lerobot_fixtures.sh``: it makes its
own virtual environment with ``lerobot-dataset==0.5.0`` (``ledataset``'s ``LeRobotDataset.create`` /
``add_frame`` / ``save_episode`` / ``finalize``) and a matching torch/torchvision pair, which do not load
in vlaforge's environment, and the small output is committed. 3 episodes of 2 tasks share one data
parquet file; camera ``top`` is stored as PNG images in the parquet, camera ``wrist`` as AV1 video,
all episodes in one mp4, located by per-episode from/to timestamps.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from robodata_helpers import LEROBOT_V30 as FIXTURE
from synthetic_data import train_small_vlm

from vlaforge.robotics.episodes import load_episode, read_index
from vlaforge.robotics.lerobot import LeRobotError, convert_lerobot

EXPECTED = np.load(FIXTURE.parent / "so100_mixed.expected.npz")
EPISODES = range(3)
VIDEO = FIXTURE / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4"


def test_fixture_is_v30_with_image_and_video_cameras_and_many_episodes_per_file():
    info = json.loads((FIXTURE / "meta" / "info.json").read_text())
    assert info["codebase_version"] == str(EXPECTED["codebase_version"]) == "v3.0"
    assert info["features"]["observation.images.top"]["dtype"] == "image"
    assert info["features"]["observation.images.wrist"]["dtype"] == "video"
    assert [p.name for p in (FIXTURE / "data").rglob("*.parquet")] == ["file-000.parquet"]
    assert [p.name for p in (FIXTURE / "videos").rglob("*.mp4")] == ["file-000.mp4"]


def _check_round_trip(out: str, image_size: int = 0) -> None:
    metas = read_index(out)
    assert [m.episode_id for m in metas] == [f"so100_mixed-{i:06d}" for i in EPISODES]
    for i, meta in zip(EPISODES, metas):
        assert meta.instruction == str(EXPECTED[f"{i}/task"]) and meta.task == "so100_mixed"
        ep = load_episode(meta, ["top", "wrist"], 4, 4)
        np.testing.assert_array_equal(ep.proprio, EXPECTED[f"{i}/state"][:, 1:5])
        np.testing.assert_array_equal(ep.action, EXPECTED[f"{i}/action"])
        if not image_size:
            np.testing.assert_array_equal(ep.images["top"], EXPECTED[f"{i}/top"])  # PNG in the parquet: lossless
            # AV1 at crf 30: the right frame of the right episode for every row, within a few levels
            assert np.abs(ep.images["wrist"].astype(int) - EXPECTED[f"{i}/wrist"]).max() <= 8
        else:
            assert ep.images["wrist"].shape[1:] == ep.images["top"].shape[1:] == (image_size, image_size, 3)


def test_v30_round_trip_frames_states_actions_instructions(tmp_path):
    summary = convert_lerobot(str(FIXTURE), str(tmp_path / "raw"), state_slice="1:5")
    assert summary["episodes"] == 3 and summary["frames"] == 28 and summary["codebase_version"] == "v3.0"
    assert summary["cameras"] == ["top", "wrist"]
    _check_round_trip(str(tmp_path / "raw"))


def test_v30_from_the_loopback_s3(s3_root, tmp_path):
    shutil.copytree(FIXTURE, s3_root / "bucket" / "lerobot" / "so100_mixed")
    summary = convert_lerobot("s3://bucket/lerobot/so100_mixed", str(tmp_path / "raw"), state_slice="1:5")
    assert summary["frames"] == 28
    _check_round_trip(str(tmp_path / "raw"))


def test_v30_config_picks_keys_dims_and_views(tmp_path):
    convert_lerobot(str(FIXTURE), str(tmp_path / "raw"), cameras={"observation.images.wrist": "behindGripper"},
                    state_key="action", action_key="observation.state", action_slice="0,2,4,5", image_size=16)
    meta = read_index(str(tmp_path / "raw"))[1]
    ep = load_episode(meta, ["behindGripper"], 4, 4)
    assert meta.cameras == ["behindGripper"] and ep.images["behindGripper"].shape == (11, 16, 16, 3)
    np.testing.assert_array_equal(ep.proprio, EXPECTED["1/action"])
    np.testing.assert_array_equal(ep.action, EXPECTED["1/state"][:, [0, 2, 4, 5]])


def _broken(tmp_path) -> Path:
    root = tmp_path / "broken"
    shutil.copytree(FIXTURE, root)
    return root


def _nothing_written(out: Path) -> None:
    assert not (out / "episodes.jsonl").exists() and not list(out.rglob("*.npz")), list(out.rglob("*"))


@pytest.mark.parametrize("case", ["episodes", "version", "camera", "state_key", "video"])
def test_v30_bad_input_is_named_and_leaves_nothing(tmp_path, case):
    root, out = _broken(tmp_path), tmp_path / "out"
    kwargs = {"state_slice": "0:4"}
    if case == "episodes":
        (root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").unlink()
        match = r"broken/meta/episodes: no chunk-XXX/file-XXX.parquet episode files"
    elif case == "version":
        info = json.loads((root / "meta" / "info.json").read_text())
        (root / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v4.0"}))
        match = r"broken/meta/info.json: codebase_version 'v4.0' is not supported \(supported: v2.0, v2.1, v3.0\)"
    elif case == "camera":
        kwargs["cameras"] = {"observation.images.side": "side"}
        match = ("no camera feature observation.images.side; camera features: observation.images.top, "
                 "observation.images.wrist")
    elif case == "state_key":
        kwargs["state_key"] = "observation.joints"
        match = r"no feature 'observation.joints' \(state_key\); features: observation.state, action, "
    else:  # the mp4's first half intact, the rest garbage: episodes 0.. decode, a later one cannot
        data = VIDEO.read_bytes()
        (root / VIDEO.relative_to(FIXTURE)).write_bytes(data[:200] + bytes(range(256)) * 8)
        match = r"broken/videos/observation.images.wrist/chunk-000/file-000.mp4: cannot decode video"
    with pytest.raises(LeRobotError, match=match):
        convert_lerobot(str(root), str(out), **kwargs)
    if out.exists():
        _nothing_written(out)


def test_v30_lost_episodes_files_and_a_failure_after_some_episodes(tmp_path):
    root, out = _broken(tmp_path), tmp_path / "out"
    shutil.rmtree(root / "meta" / "episodes")
    with pytest.raises(LeRobotError, match=r"broken/meta/episodes: missing; a v3.0 dataset lists its episodes"):
        convert_lerobot(str(root), str(out), state_slice="0:4")
    # one of two episodes files lost: info.json's total_episodes tells
    shutil.copytree(FIXTURE / "meta" / "episodes", root / "meta" / "episodes")
    import pyarrow.parquet as pq

    first = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(first)
    pq.write_table(table.slice(0, 2), first)
    pq.write_table(table.slice(2), first.with_name("file-001.parquet"))
    assert convert_lerobot(str(root), str(out), state_slice="0:4")["episodes"] == 3  # two files, all listed
    shutil.rmtree(out)
    first.with_name("file-001.parquet").unlink()
    with pytest.raises(LeRobotError, match=r"broken/meta/episodes: 2 episodes in 1 file\(s\), but meta/info.json says "
                                           r"total_episodes 3; is an episodes file missing\?"):
        convert_lerobot(str(root), str(out), state_slice="0:4")
    # episodes 0 and 1 import, episode 2's rows are gone: the two written episodes are removed again
    root = tmp_path / "short"
    shutil.copytree(FIXTURE, root)
    import pyarrow.compute as pc

    data = root / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(data)
    pq.write_table(table.filter(pc.less(table.column("episode_index"), 2)), data)
    with pytest.raises(LeRobotError, match=r"short/data/chunk-000/file-000.parquet: no rows of episode 2"):
        convert_lerobot(str(root), str(out), state_slice="0:4")
    _nothing_written(out)


def test_tiny_vla_trains_on_the_v30_import_through_the_from_lerobot_pipeline(tmp_path, monkeypatch):
    """vlaforge-vla-from-lerobot on kfp.local: dataset URI -> lerobot_import -> preprocess_robotics ->
    vla_finetune on a tiny VLM; the policy bundle it returns acts on the dataset's cameras."""
    from kfp import local
    from kfp.local import config as local_config

    from vlaforge.policy import Observation, load_policy
    from vlaforge.train.config import TrainConfig

    train = TrainConfig(global_batch_size=8, micro_batch_size=8, lr=3e-3, warmup_steps=2, max_steps=4,
                        val_every=4, ckpt_every=10_000, log_every=4)
    root = tmp_path
    vlm = train_small_vlm(root, " ".join(str(EXPECTED[f"{i}/task"]) + "." for i in EPISODES), 32, train)

    monkeypatch.setattr(local_config.LocalExecutionConfig, "instance", None)  # leave kfp.local as it was
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    from pipelines.from_lerobot import vla_from_lerobot_pipeline  # after local.init: no cluster retries

    run = vla_from_lerobot_pipeline(
        dataset_uri=str(FIXTURE), backbone_uri=vlm, preset="tiny",
        lerobot_import_overrides='state_slice="1:5"\nimage_size=32',
        preprocess_overrides="future_steps=4\nnum_workers=0\nval_fraction=0.34\nimage_indices=[-1, 0]\npast_steps=1",
        vla_overrides="expert={d_model: 32, n_layers: 1, n_heads: 2, last_k_layers: 1}\ntrain.max_steps=16\n"
                      "train.global_batch_size=8\ntrain.micro_batch_size=8\ntrain.warmup_steps=2\n"
                      "train.val_every=16\ntrain.ckpt_every=16\ntrain.log_every=8\ntrain.ema_decay=0\n"
                      "freeze_backbone=false\ndata_in_memory=false\ncache_backbone_states=false\nbalance_tasks=false")
    policy_path = run.output.path
    summary = json.loads((Path(policy_path) / "train_summary.json").read_text())
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    policy = load_policy(policy_path)
    assert sorted(policy.cameras) == ["top", "wrist"] and policy.image_size == 32
    obs = Observation(images={c: np.zeros((32, 32, 3), np.uint8) for c in policy.cameras},
                      proprio=EXPECTED["0/state"][0, 1:5], instruction=str(EXPECTED["0/task"]))
    (chunk,) = policy.predict([[obs] * policy.n_obs_steps], seed=0)
    assert chunk.shape == (4, 4) and np.isfinite(chunk).all()


def test_video_reader_reads_forward_and_seeks_back():
    from vlaforge.robotics.lerobot_io import VideoReader

    starts = {0: 0.0, 1: 0.8, 2: 1.9}  # from_timestamp of each episode in the shared mp4 (meta/episodes)
    reader = VideoReader(str(VIDEO), fps=10)
    try:
        for i in (1, 2, 0, 2):  # forward within the file, then back to the start, then forward again
            frames = reader.frames(np.arange(len(EXPECTED[f"{i}/state"])) / 10, start_s=starts[i])
            assert np.abs(frames.astype(int) - EXPECTED[f"{i}/wrist"]).max() <= 8, i
        with pytest.raises(LeRobotError, match=r"file-000.mp4: no video frames between 5.000s and 5.100s"):
            reader.frames(np.array([0.0, 0.1]), start_s=5.0)
    finally:
        reader.close()
