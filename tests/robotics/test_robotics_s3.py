"""LeRobot import, preprocessing (in one pass and in fan-out parts) and the loader with every dataset on a real S3
server (loopback)."""

import dataclasses
import itertools
import json
import shutil

from robodata_helpers import write_dataset, write_lerobot_dataset
from vlaforge.robotics.config import PreprocessConfig
from vlaforge.robotics.lerobot import convert_lerobot
from vlaforge.robotics.loader import make_loader
from vlaforge.robotics.preprocess import encode_part, preprocess, write_parts


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


def test_preprocess_parts_on_s3_merge_into_the_dataset_of_one_pass(s3_root, tmp_path):
    """Fan-out slices writing their encoded parts to s3:// (as pods do) and the merge reading them back."""
    shutil.copytree(write_dataset(tmp_path / "sim", 5, cameras=("top",)), s3_root / "bucket" / "sim")
    cfg = PreprocessConfig(num_workers=0, val_fraction=0.2, future_steps=2)
    parts = [f"s3://bucket/parts/{k}" for k in (1, 2)]
    for k, uri in enumerate(parts, 1):
        encode_part(dataclasses.replace(cfg, part=f"{k}/2"), ["s3://bucket/sim"], uri)
    assert json.loads((s3_root / "bucket" / "parts" / "2" / "part.json").read_text())["episodes"] == [2, 5]
    merged = write_parts(cfg, parts, "s3://bucket/merged")
    whole = preprocess(cfg, ["s3://bucket/sim"], "s3://bucket/whole")
    assert {k: v for k, v in merged.items() if k not in ("seconds", "samples_per_s")} == \
           {k: v for k, v in whole.items() if k not in ("seconds", "samples_per_s")}
    for name in ("splits.json", "train/manifest.jsonl", "val/manifest.jsonl"):
        assert (s3_root / "bucket" / "merged" / name).read_bytes() == (s3_root / "bucket" / "whole" / name).read_bytes()
