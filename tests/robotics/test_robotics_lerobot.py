"""LeRobot v2.x import: parquet images, mp4 videos, slices, and the same preprocessing path after it."""

import json
import shutil

import numpy as np
import pytest

from robodata_helpers import write_dataset, write_lerobot_dataset
from vlaforge.data.shards import iter_samples, read_manifest
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.episodes import load_episode, read_index
from vlaforge.robotics.lerobot import LeRobotError, convert_lerobot, parse_slice
from vlaforge.robotics.preprocess import preprocess


@pytest.fixture(scope="module")
def lerobot(tmp_path_factory):
    return write_lerobot_dataset(tmp_path_factory.mktemp("lr") / "so100_cube", n_episodes=2, length=12)


def test_convert_maps_state_action_cameras_and_tasks(lerobot, tmp_path):
    summary = convert_lerobot(lerobot["root"], str(tmp_path / "raw"), state_slice="1:5")
    assert summary["episodes"] == 2 and summary["frames"] == 24 and summary["cameras"] == ["top", "wrist"]
    metas = read_index(str(tmp_path / "raw"))
    assert [m.episode_id for m in metas] == ["so100_cube-000000", "so100_cube-000001"]
    for meta, want in zip(metas, lerobot["episodes"]):
        assert meta.task == "so100_cube" and meta.instruction == want["task"] and meta.cameras == ["top", "wrist"]
        assert meta.success is True
        ep = load_episode(meta, ["top", "wrist"], 4, 4)
        np.testing.assert_array_equal(ep.proprio, want["state"][:, 1:5])
        np.testing.assert_array_equal(ep.action, want["action"])
        np.testing.assert_array_equal(ep.images["top"], want["top"])  # PNG bytes in the parquet: lossless
        # mp4 (lossless x264, but RGB <-> YUV conversion): the right frame for every row, within a few levels
        assert np.abs(ep.images["wrist"].astype(int) - want["wrist"]).max() <= 4


def test_camera_selection_renaming_resize_and_index_slices(lerobot, tmp_path):
    convert_lerobot(lerobot["root"], str(tmp_path / "raw"), cameras={"observation.images.top": "front"},
                    state_slice="0,2,4,5", task="cube", image_size=8)
    meta = read_index(str(tmp_path / "raw"))[1]
    assert meta.cameras == ["front"] and meta.task == "cube"
    ep = load_episode(meta, ["front"], 4, 4)
    assert ep.images["front"].shape == (12, 8, 8, 3)
    np.testing.assert_array_equal(ep.proprio, lerobot["episodes"][1]["state"][:, [0, 2, 4, 5]])


def test_converted_data_goes_through_the_same_preprocessing(lerobot, tmp_path):
    convert_lerobot(lerobot["root"], str(tmp_path / "lr"), state_slice="0:4", image_size=16,
                    cameras={"observation.images.top": "corner", "observation.images.wrist": "behindGripper"})
    sim = write_dataset(tmp_path / "sim", 3)
    summary = preprocess(PreprocessConfig(num_workers=0, val_fraction=0.0), [sim, str(tmp_path / "lr")],
                         str(tmp_path / "out"))
    tasks = {json.loads(s["metadata.json"])["task"]
             for shard in read_manifest(str(tmp_path / "out" / "train")) for s in iter_samples(shard.uri)}
    assert tasks == {"reach-v3", "so100_cube"} and summary["episodes"] == 5


def test_bad_lerobot_input(lerobot, tmp_path):
    with pytest.raises(LeRobotError, match=r"observation.state has dimension 6 but 4 is expected; pick dimensions "
                                           r"with state_slice \(e.g. '0:4'\)"):
        convert_lerobot(lerobot["root"], str(tmp_path / "a"))
    assert convert_lerobot(lerobot["root"], str(tmp_path / "b"), proprio_dim=None)["frames"] == 24
    with pytest.raises(LeRobotError, match="not a LeRobot dataset: missing .*meta/info.json"):
        convert_lerobot(str(tmp_path), str(tmp_path / "c"))
    with pytest.raises(LeRobotError, match="no camera feature observation.images.side; camera features: "
                                           "observation.images.top, observation.images.wrist"):
        convert_lerobot(lerobot["root"], str(tmp_path / "d"), state_slice="0:4",
                        cameras={"observation.images.side": "side"})
    with pytest.raises(LeRobotError, match=r"state_slice '9:12' selects no valid indices"):
        convert_lerobot(lerobot["root"], str(tmp_path / "e"), state_slice="9:12")

    broken = tmp_path / "broken"
    shutil.copytree(lerobot["root"], broken)
    info = json.loads((broken / "meta" / "info.json").read_text())
    (broken / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v9.9"}))
    with pytest.raises(LeRobotError, match=r"codebase_version 'v9.9' is not supported \(supported: v2.0, v2.1, v3.0\)"):
        convert_lerobot(str(broken), str(tmp_path / "f"), state_slice="0:4")
    (broken / "meta" / "info.json").write_text(json.dumps(info))
    (broken / "videos" / "chunk-000" / "observation.images.wrist" / "episode_000001.mp4").unlink()
    with pytest.raises(FileNotFoundError, match="episode_000001.mp4"):
        convert_lerobot(str(broken), str(tmp_path / "g"), state_slice="0:4")
    assert not (tmp_path / "g" / "episodes.jsonl").exists(), "no index is written for a failed import"
    assert not list((tmp_path / "g").rglob("*.npz")), "the episodes written before the failure are removed"


def test_parse_slice():
    np.testing.assert_array_equal(parse_slice("2:", 5, "s"), [2, 3, 4])
    np.testing.assert_array_equal(parse_slice(":2", 5, "s"), [0, 1])
    np.testing.assert_array_equal(parse_slice(None, 3, "s"), [0, 1, 2])
    with pytest.raises(LeRobotError, match="must look like"):
        parse_slice("a-b", 5, "state_slice")
