"""LeRobot import, preprocessing and the loader with every dataset on a real S3 server (loopback)."""

import itertools
import shutil

from robodata_helpers import write_dataset, write_lerobot_dataset
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.lerobot import convert_lerobot
from vlaforge.robotics.loader import make_loader
from vlaforge.robotics.preprocess import preprocess


def test_lerobot_to_batches_through_s3(s3_root, tmp_path):
    lr = write_lerobot_dataset(tmp_path / "lr", n_episodes=2, length=6)
    shutil.copytree(lr["root"], s3_root / "bucket" / "lerobot")
    shutil.copytree(write_dataset(tmp_path / "sim", 3, cameras=("top", "wrist")), s3_root / "bucket" / "sim")

    summary = convert_lerobot("s3://bucket/lerobot", "s3://bucket/raw", state_slice="0:4", image_size=16)
    assert summary["frames"] == 12 and (s3_root / "bucket" / "raw" / "episodes.jsonl").is_file()

    out = "s3://bucket/robotics"
    result = preprocess(PreprocessConfig(num_workers=2, val_fraction=0.2, future_steps=2),
                        ["s3://bucket/sim", "s3://bucket/raw"], out)
    assert result["episodes"] == 5
    served = s3_root / "bucket" / "robotics"
    assert {p.name for p in served.iterdir()} == {"train", "val", "stats.json", "preprocessing_config.yaml",
                                                  "splits.json"}
    assert not list(served.rglob("*.tmp"))

    batches = list(itertools.islice(make_loader(out, 4, 0, infinite=False), 100))
    assert sum(len(b["task"]) for b in batches) == result["train_samples"]
    assert {t for b in batches for t in b["task"]} <= {"reach-v3", "lerobot"}
    assert batches[0]["images"].shape[1:] == (4, 3, 16, 16)
