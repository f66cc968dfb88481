"""Caption data: rendered scenes captioned from the true state; existing shards validated and imported."""

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from vlaforge.data.shards import ShardError, ShardWriter, iter_samples, read_manifest
from vlaforge.sim.scene_captions import (
    CaptionConfig,
    describe_scene,
    import_caption_shards,
    make_caption_data,
    relation,
    validate_caption_shards,
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("captions")
    cfg = CaptionConfig(tasks=["reach-v3", "push-v3"], scenes_per_task=3, cameras=["corner", "topview"],
                        image_size=32, samples_per_shard=5)
    return out, make_caption_data(cfg, str(out))


def test_rendered_shards_follow_the_img2dataset_layout(rendered):
    out, summary = rendered
    assert summary["num_samples"] == 12 and summary["num_shards"] == 3
    shards = read_manifest(str(out))
    assert [s.num_samples for s in shards] == [5, 5, 2]
    samples = [s for shard in shards for s in iter_samples(shard.uri)]
    keys = [s["__key__"] for s in samples]
    assert len(set(keys)) == 12 and "push-v3-000002-topview" in keys
    for sample in samples:
        meta = json.loads(sample["json"])
        assert set(meta) >= {"uid", "caption", "width", "height", "task", "camera"}
        assert meta["uid"] == sample["__key__"] and meta["caption"] == sample["txt"].decode()
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.size == (meta["width"], meta["height"]) == (32, 32)
        assert meta["task"] in meta["uid"] and meta["camera"] in meta["uid"]
        caption = meta["caption"]
        if meta["task"] == "push-v3":
            assert "red puck" in caption and "green goal dot" in caption
            assert "Task: push the puck to the green goal" in caption
        else:
            assert "red goal sphere" in caption and "reach the red goal" in caption
        assert caption.startswith("Corner view" if meta["camera"] == "corner" else "Top view")


def test_captions_state_relative_positions_from_the_true_state():
    assert relation(np.array([0.1, 0.6, 0.2]), np.array([0.0, 0.6, 0.2])) == "10 cm right of"
    assert relation(np.array([0.0, 0.8, 0.1]), np.array([0.05, 0.6, 0.2])) == "20 cm beyond and 10 cm below"
    assert relation(np.zeros(3), np.full(3, 0.005)) == "right at"
    # all three axes down to 1 cm (metaworld4: reach's goal has three coordinates)
    assert (relation(np.array([0.0, 0.8, 0.1]), np.array([0.012, 0.6, 0.2]), offsets=3, min_offset_cm=1)
            == "20 cm beyond and 10 cm below and 1 cm left of")
    assert relation(np.array([0.0, 0.8, 0.1]), np.array([0.009, 0.6, 0.2]), offsets=3, min_offset_cm=1) == \
        "20 cm beyond and 10 cm below"
    state = np.zeros(39)
    state[0:3], state[3], state[4:7], state[36:39] = [0, 0.6, 0.2], 1.0, [-0.1, 0.6, 0.02], [-0.1, 0.8, 0.02]
    caption = describe_scene("push-v3", "corner", state, success=False)
    assert caption == ("Corner view of a red robot arm over a wooden table, its gripper open. "
                       "The red puck is 18 cm below and 10 cm left of the gripper. "
                       "The green goal dot is 20 cm beyond the red puck. "
                       "Task: push the puck to the green goal; not done yet.")


@pytest.mark.parametrize("setting, message", [({"offsets": 4}, "captions.offsets must be 1, 2 or 3"),
                                              ({"min_offset_cm": -1}, "captions.min_offset_cm must be >= 0")])
def test_bad_relation_settings_are_named(tmp_path, setting, message):
    with pytest.raises(ValueError, match=message):
        make_caption_data(CaptionConfig(**setting), str(tmp_path))


def test_existing_shards_are_validated_and_imported(rendered, tmp_path):
    out, _ = rendered
    summary = import_caption_shards(str(out), str(tmp_path / "copy"))
    assert summary["num_samples"] == 12 and summary["num_shards"] == 3
    assert (tmp_path / "copy" / "manifest.jsonl").read_text() == (out / "manifest.jsonl").read_text()


def _write_shard(folder, samples: list[dict], manifest: bool = True) -> None:
    with ShardWriter(str(folder), "part", 100) as writer:
        for sample in samples:
            writer.write(sample)
    if not manifest:
        os.remove(folder / "manifest.jsonl")


def _png(color=(200, 10, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def test_img2dataset_output_without_a_manifest_is_accepted(tmp_path):
    _write_shard(tmp_path / "src", [{"__key__": f"{i:09d}", "png": _png(), "txt": b"a red square",
                                      "json": json.dumps({"uid": str(i)}).encode()} for i in range(3)],
                 manifest=False)
    summary = import_caption_shards(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert summary["num_samples"] == 3
    assert json.loads((tmp_path / "dst" / "manifest.jsonl").read_text()) == {"shard": "part-000000",
                                                                              "num_sequences": 3}


@pytest.mark.parametrize("sample, message", [
    ({"png": b"not an image", "txt": b"caption"}, "image .png does not decode"),
    ({"png": _png(), "txt": b"  "}, "no caption"),
    ({"txt": b"caption only"}, "no image"),
    ({"png": _png(), "json": b"{broken"}, ".json is not valid JSON"),
])
def test_bad_samples_are_named_by_shard_and_key(tmp_path, sample, message):
    _write_shard(tmp_path / "src", [{"__key__": "000000001", "png": _png(), "txt": b"good"},
                                    {"__key__": "000000002", **sample}])
    with pytest.raises(ShardError, match=f"part-000000.tar, key '000000002': .*{message}"):
        import_caption_shards(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()  # nothing is written unless everything is valid


def test_truncated_shard_and_wrong_count_are_named(tmp_path):
    _write_shard(tmp_path / "src", [{"__key__": f"{i:09d}", "png": _png(), "txt": b"x"} for i in range(4)])
    manifest = tmp_path / "src" / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"num_sequences": 4', '"num_sequences": 5'))
    with pytest.raises(ShardError, match="manifest.jsonl says 5 samples, it holds 4"):
        validate_caption_shards(str(tmp_path / "src"))
    shard = tmp_path / "src" / "part-000000.tar"
    shard.write_bytes(shard.read_bytes()[:700])
    with pytest.raises(ShardError, match="part-000000.tar"):
        validate_caption_shards(str(tmp_path / "src"))
    with pytest.raises(ShardError, match="no manifest.jsonl and no .tar shards"):
        validate_caption_shards(str(tmp_path))

