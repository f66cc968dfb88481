"""Every kind of input file checked when the artifact is opened: the checkers on real files cut short, and
each stage that reads such an input refusing it up front with the file's name."""

import io
import tarfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import copy_artifact, tree_hashes
from vlaforge.artifact_files import (IncompleteFileError, check_safetensors, check_shards, check_zip,
                                     count_tar_samples)
from vlaforge.artifacts import EXISTING_ENV, ArtifactError, artifact_kind, check_input, check_policy
from vlaforge.cli import main


@pytest.fixture(autouse=True)
def _no_policy_from_env(monkeypatch):
    monkeypatch.delenv(EXISTING_ENV, raising=False)


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _drop_last_sample(shard: Path) -> None:
    """Rewrite a tar shard without its last sample: a valid tar holding fewer samples than the manifest says."""
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]
    last = members[-1][0].name.partition(".")[0]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, data in members:
            if member.name.partition(".")[0] != last:
                tar.addfile(member, io.BytesIO(data))
    shard.write_bytes(buf.getvalue())


def test_safetensors_checker(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(64, 8), "b": torch.ones(3)}, str(path))
    check_safetensors(str(path))
    size = path.stat().st_size
    for keep, message in [(size - 1, "its header needs"), (20, "header of"), (4, "no header")]:
        _cut(path, keep)
        with pytest.raises(IncompleteFileError, match=rf"{path}: truncated safetensors file.*{message}"):
            check_safetensors(str(path))
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(IncompleteFileError, match="not a safetensors file"):
        check_safetensors(str(path))


def test_zip_checker(upstream, tmp_path):
    npz = Path(copy_artifact(upstream.episodes, tmp_path / "ep")) / "episodes" / "ep-00000.npz"
    check_zip(str(npz))
    _cut(npz, npz.stat().st_size - 30)  # the central directory's end record is gone
    with pytest.raises(IncompleteFileError, match=f"{npz}: truncated or corrupt zip/npz"):
        check_zip(str(npz))


def test_shard_checkers(upstream, tmp_path):
    tok = Path(copy_artifact(upstream.tok, tmp_path / "tok"))
    shard = next((tok / "train").glob("*.tar"))
    total = check_shards(str(tok / "train"))
    assert total == count_tar_samples(str(shard)) > 1
    _drop_last_sample(shard)
    with pytest.raises(IncompleteFileError, match=rf"{shard}: holds {total - 1} samples, its manifest line says {total}"):
        check_shards(str(tok / "train"))
    shard.unlink()
    with pytest.raises(IncompleteFileError, match=f"{shard}: shard listed in the manifest is missing"):
        check_shards(str(tok / "train"))
    (tok / "train" / "manifest.jsonl").unlink()
    with pytest.raises(IncompleteFileError, match="missing manifest"):
        check_shards(str(tok / "train"))


def test_remote_shards_are_checked_by_size(upstream, s3_server):
    from vlaforge import storage

    storage.copy_dir(upstream.captions, "s3://bucket/captions")
    assert check_input("s3://bucket/captions", "captions", "captions") == "captions"
    name = next(n for n in storage.listdir(upstream.captions) if n.endswith(".tar"))
    storage.write_bytes(f"s3://bucket/captions/{name}", (Path(upstream.captions) / name).read_bytes()[:1000])
    with pytest.raises(IncompleteFileError, match=f"s3://bucket/captions/{name}: truncated tar shard"):
        check_input("s3://bucket/captions", "captions", "captions")


@pytest.mark.parametrize("name", ["tok", "llm", "captions", "vlm", "episodes", "robotics", "policy", "rollouts"])
def test_every_kind_is_recognised_and_complete(name, upstream):
    kind = artifact_kind(getattr(upstream, name))
    expected = {"tok": "tokenized", "policy": "vla", "rollouts": "rollouts"}.get(name, name)
    assert kind == expected and check_input(getattr(upstream, name), kind, name) == kind


def test_policy_specs(upstream, tmp_path):
    check_policy(upstream.policy + "?execute_steps=2")
    check_policy("baseline:random")
    check_policy("grpc://localhost:50051")
    with pytest.raises(ArtifactError, match=f"policy {upstream.vlm} holds a VLM model .*expected a VLA policy"):
        check_policy(upstream.vlm)
    bundle = Path(copy_artifact(upstream.policy, tmp_path / "p"))
    (bundle / "normalizer.json").unlink()
    with pytest.raises(IncompleteFileError, match=f"{bundle / 'normalizer.json'}: missing"):
        check_policy(str(bundle))


def _truncate_shard(folder: Path) -> Path:
    shard = next(folder.glob("*.tar"))
    _cut(shard, shard.stat().st_size // 2 + 100)
    return shard


def _truncate_weights(folder: Path) -> Path:
    _cut(folder / "model.safetensors", 1000)
    return folder / "model.safetensors"


def _truncate_npz(folder: Path) -> Path:
    npz = folder / "episodes" / "ep-00002.npz"
    _cut(npz, 100)
    return npz


# (input artifact, how it is damaged, the command reading it; {in} is the damaged copy, {out} a new output)
CASES = {
    "llm weights -> vlm-pretrain": ("llm", _truncate_weights,
                                    ["vlm-pretrain", "--llm", "{in}", "--captions", "{captions}", "--out", "{out}"]),
    "caption shard -> vlm-pretrain": ("captions", _truncate_shard,
                                      ["vlm-pretrain", "--llm", "{llm}", "--captions", "{in}", "--out", "{out}"]),
    "vlm weights -> vla-finetune": ("vlm", _truncate_weights, ["vla-finetune", "--backbone", "{in}", "--robotics",
                                                              "{robotics}", "--out", "{out}"]),
    "robotics shard -> vla-finetune": ("robotics", lambda f: _truncate_shard(f / "train"),
                                       ["vla-finetune", "--backbone", "{vlm}", "--robotics", "{in}", "--out", "{out}"]),
    "token shard -> llm-pretrain": ("tok", lambda f: _truncate_shard(f / "val"),
                                    ["llm-pretrain", "--data", "{in}", "--out", "{out}"]),
    "episode npz -> preprocess": ("episodes", _truncate_npz, ["preprocess", "--episodes", "{in}", "--out", "{out}"]),
    "policy weights -> sim-eval": ("policy", _truncate_weights, ["sim-eval", "--policy", "{in}", "--out", "{out}"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_truncated_input_is_refused_up_front(case, upstream, tmp_path, capsys):
    name, damage, command = CASES[case]
    damaged = Path(copy_artifact(getattr(upstream, name), tmp_path / "in"))
    culprit = damage(damaged)
    before = tree_hashes(tmp_path)
    values = {**vars(upstream), "in": str(damaged), "out": str(tmp_path / "out")}
    assert main([arg.format(**values) for arg in command]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(culprit) in err, err
    assert tree_hashes(tmp_path) == before  # nothing written, not even the output folder


def test_hugging_face_model_weights_are_checked(tmp_path):
    folder = tmp_path / "hf_vlm"
    folder.mkdir()
    (folder / "config.json").write_text('{"kind": "hf_vlm"}')
    with pytest.raises(IncompleteFileError, match="hf_vlm/hf: missing"):
        check_input(str(folder), "hf_vlm", "backbone")
    (folder / "hf").mkdir()
    weights = folder / "hf" / "model.safetensors"
    save_file({"w": torch.zeros(32, 32)}, str(weights))
    assert check_input(str(folder), ("vlm", "hf_vlm"), "backbone") == "hf_vlm"
    _cut(weights, 200)
    with pytest.raises(IncompleteFileError, match=f"{weights}: truncated safetensors"):
        check_input(str(folder), ("vlm", "hf_vlm"), "backbone")
