"""`vlaforge preprocess` and `vlaforge import-lerobot` end to end on tiny data."""

import json

from robodata_helpers import LEROBOT_V30, write_dataset, write_lerobot_dataset
from vlaforge.cli import main


def test_import_lerobot_then_preprocess(tmp_path, capsys):
    lr = write_lerobot_dataset(tmp_path / "lr", n_episodes=2, length=6, video_camera=None)
    assert main(["import-lerobot", lr["root"], str(tmp_path / "raw"), "--state-slice", "0:4",
                 "--camera", "observation.images.top=corner", "--image-size", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["cameras"] == ["corner"]
    sim = write_dataset(tmp_path / "sim", 2, cameras=("corner",))
    assert main(["preprocess", "--episodes", sim, str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                 "--set", "num_workers=0", "--set", "preprocess.future_steps=2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 4
    assert "future_steps: 2" in (tmp_path / "out" / "preprocessing_config.yaml").read_text()


def test_errors_are_reported_not_raised(tmp_path, capsys):
    lr = write_lerobot_dataset(tmp_path / "lr", n_episodes=1, length=4, video_camera=None)
    assert main(["import-lerobot", lr["root"], str(tmp_path / "raw")]) == 2
    assert "observation.state has dimension 6 but 4 is expected" in capsys.readouterr().err
    assert main(["preprocess", "--episodes", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere: nothing there (expected raw robot episodes" in capsys.readouterr().err
    assert main(["preprocess", "--episodes", str(tmp_path / "x"), "--out", str(tmp_path / "o"),
                 "--set", "past_step=1"]) == 2
    assert "unknown key 'preprocess.past_step'" in capsys.readouterr().err


def test_lerobot_import_command_on_v30_with_preset_overrides(tmp_path, capsys):
    assert main(["lerobot-import", str(LEROBOT_V30), str(tmp_path / "raw"), "--state-slice", "1:5",
                 "--set", "task=so100", "--set", "lerobot_import.cameras={observation.images.wrist: wrist}"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["codebase_version"] == "v3.0" and summary["cameras"] == ["wrist"] and summary["frames"] == 28
    assert json.loads((tmp_path / "raw" / "episodes.jsonl").read_text().splitlines()[1])["task"] == "so100"
    assert main(["lerobot-import", str(LEROBOT_V30), str(tmp_path / "bad"), "--set", "state_key=observation.joints"]) == 2
    assert "no feature 'observation.joints' (state_key); features: observation.state, action," in capsys.readouterr().err
