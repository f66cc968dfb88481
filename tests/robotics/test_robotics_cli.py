"""`vlaforge preprocess` and `vlaforge import-lerobot` end to end on tiny data."""

import json

from robodata_helpers import write_dataset, write_lerobot_dataset
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
    assert "missing episode index" in capsys.readouterr().err
    assert main(["preprocess", "--episodes", str(tmp_path / "x"), "--out", str(tmp_path / "o"),
                 "--set", "past_step=1"]) == 2
    assert "unknown key 'preprocess.past_step'" in capsys.readouterr().err
