"""The bad inputs of issue #24, each through the ``vlaforge`` command as a user runs it: exit code 2, one
error line naming the file or key, no traceback, and every file that was there before left byte-identical."""

import socket
from pathlib import Path

from conftest import assert_clean_error, copy_artifact, read_only_dir, tree_hashes, vlaforge


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tokenize_refuses_an_llm_model_folder(upstream, tmp_path):
    model = copy_artifact(upstream.llm, tmp_path / "model")
    before = tree_hashes(tmp_path)
    line = assert_clean_error(vlaforge("tokenize", "--out", model), model, "LLM model (llm_pretrain)")
    assert "never writes over another stage's artifact" in line
    assert tree_hashes(tmp_path) == before


def test_a_model_is_not_written_into_a_tokenized_dataset(upstream, tmp_path):
    data = copy_artifact(upstream.tok, tmp_path / "tok")
    before = tree_hashes(tmp_path)
    assert_clean_error(vlaforge("llm-pretrain", "--data", upstream.tok, "--out", data), data, "tokenized dataset")
    assert tree_hashes(tmp_path) == before


def test_serve_port_out_of_range(upstream):
    assert_clean_error(vlaforge("serve", upstream.policy, "--port", "99999"), "--port", "99999")


def test_negative_max_steps_names_the_key_and_trains_nothing(upstream, tmp_path):
    out = tmp_path / "llm"
    assert_clean_error(vlaforge("llm-pretrain", "--data", upstream.tok, "--out", str(out),
                                "--set", "train.max_steps=-5"), "'llm.train.max_steps' must be >= 0", "-5")
    assert not out.exists()


def test_negative_learning_rate_names_the_setting(upstream, tmp_path):
    assert_clean_error(vlaforge("llm-pretrain", "--data", upstream.tok, "--out", str(tmp_path / "llm"),
                                "--set", "train.lr=-0.001"), "'llm.train.lr' must be > 0")


def test_sim_eval_negative_workers(tmp_path):
    assert_clean_error(vlaforge("sim-eval", "--policy", "baseline:zero", "--out", str(tmp_path / "r"),
                                "--set", "workers=-1"), "'sim_eval.workers' must be >= 0")


def test_truncated_backbone_safetensors_in_vla_finetune(upstream, tmp_path):
    vlm = Path(copy_artifact(upstream.vlm, tmp_path / "vlm"))
    weights = vlm / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    before = tree_hashes(tmp_path)
    assert_clean_error(vlaforge("vla-finetune", "--backbone", str(vlm), "--robotics", upstream.robotics,
                                "--out", str(tmp_path / "policy")), str(weights), "truncated safetensors")
    assert tree_hashes(tmp_path) == before


def test_truncated_policy_safetensors_in_serve(upstream, tmp_path):
    policy = Path(copy_artifact(upstream.policy, tmp_path / "policy"))
    weights = policy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    assert_clean_error(vlaforge("serve", str(policy), "--port", "0"), str(weights), "truncated safetensors")


def test_truncated_episode_npz_in_preprocess(upstream, tmp_path):
    episodes = Path(copy_artifact(upstream.episodes, tmp_path / "episodes"))
    npz = sorted((episodes / "episodes").glob("*.npz"))[1]
    npz.write_bytes(npz.read_bytes()[:len(npz.read_bytes()) // 2])
    before = tree_hashes(tmp_path)
    proc = vlaforge("preprocess", "--episodes", str(episodes), "--out", str(tmp_path / "robo"), "--set", "num_workers=2")
    assert_clean_error(proc, str(npz), "truncated or corrupt zip/npz")
    assert proc.stderr.count("error") == 1  # one line, not one per worker
    assert tree_hashes(tmp_path) == before


def test_read_only_output_folder(upstream, tmp_path):
    out = read_only_dir(tmp_path) / "model"
    assert_clean_error(vlaforge("llm-pretrain", "--data", upstream.tok, "--out", str(out)), str(out), "not writable")


def test_unreachable_object_store_output_is_found_before_training(upstream):
    port = _closed_port()
    proc = vlaforge("llm-pretrain", "--data", upstream.tok, "--out", "s3://bucket/llm",
                    env={"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "k",
                         "AWS_SECRET_ACCESS_KEY": "s", "AWS_DEFAULT_REGION": "us-east-1"})
    assert_clean_error(proc, "s3://bucket/llm", f"127.0.0.1:{port}")
    assert "llm_pretrain:" not in proc.stderr  # no training step ran


def test_truncated_shard_is_found_before_training(upstream, tmp_path):
    tok = Path(copy_artifact(upstream.tok, tmp_path / "tok"))
    shard = next((tok / "train").glob("*.tar"))
    shard.write_bytes(shard.read_bytes()[:shard.stat().st_size // 2 + 100])
    before = tree_hashes(tmp_path)
    proc = vlaforge("llm-pretrain", "--data", str(tok), "--out", str(tmp_path / "llm"))
    assert_clean_error(proc, str(shard))
    assert "llm_pretrain:" not in proc.stderr
    assert tree_hashes(tmp_path) == before


def test_non_utf8_corpus_names_the_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes("robot arm ".encode() * 20 + b"\xff\xfe latin-1 \xe9")
    assert_clean_error(vlaforge("tokenize", "--out", str(tmp_path / "tok"), "--set", f"corpus={corpus}"),
                       str(corpus), "not UTF-8")
    assert not (tmp_path / "tok").exists()


def test_output_holding_another_model_gets_a_short_message(upstream, tmp_path):
    vlm = copy_artifact(upstream.vlm, tmp_path / "vlm")
    before = tree_hashes(tmp_path)
    line = assert_clean_error(vlaforge("vla-finetune", "--backbone", upstream.vlm, "--robotics", upstream.robotics,
                                       "--out", vlm), vlm, "VLM model (vlm_pretrain)")
    assert len(line) < 300 and "weight" not in line
    assert tree_hashes(tmp_path) == before
