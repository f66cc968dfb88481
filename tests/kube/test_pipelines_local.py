"""The pipeline variants run under kfp.local: an artifact from an earlier run, imported by URI."""

from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    """A tokenize output written by the stage's entry point, as last week's run would have left it."""
    from vlaforge.stages.tokenize import run

    out = tmp_path_factory.mktemp("earlier-run") / "dataset"
    run("tiny", [], str(out))
    return out


def test_llm_from_an_imported_dataset(tokenized, tmp_path, local_kfp):
    from kfp import local

    torch.set_num_threads(1)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    from pipelines.from_artifacts import llm_from_dataset_pipeline  # after local.init: no cluster retries

    run = llm_from_dataset_pipeline(dataset_uri=str(tokenized), preset="tiny",
                                    llm_overrides="train.max_steps=4\ntrain.val_every=2\ntrain.ckpt_every=4")
    files = {p.name for p in Path(run.output.path).rglob("*")}
    assert "config.json" in files and any(name.endswith(".safetensors") for name in files)
    # a URI that holds nothing fails the stage that reads it
    with pytest.raises(RuntimeError, match="FAILURE"):
        llm_from_dataset_pipeline(dataset_uri=str(tmp_path / "no-such-dataset"), preset="tiny")


def test_vlaforge_run_refuses_a_width_it_cannot_plan_before_starting(tmp_path, local_kfp):
    from vlaforge.fanout import SliceError
    from vlaforge.run import run_embedded

    with pytest.raises(SliceError, match="sim_eval_slices=5 asks for more slices than there are items"):
        run_embedded("tiny", ["fanout.sim_eval=5", 'sim_eval.episodes="0:2"'], str(tmp_path / "runs"))
    with pytest.raises(SliceError, match="demos_slices must be an integer >= 1, got 0"):
        run_embedded("tiny", ["fanout.demos=0"], str(tmp_path / "runs"))
    with pytest.raises(SliceError, match=r"tokenize_slices=2 asks for more slices than there are items to split "
                                         r"\(1: corpus files 0:1\)"):  # the builtin corpus is one input
        run_embedded("tiny", ["fanout.tokenize=2"], str(tmp_path / "runs"))
    with pytest.raises(SliceError, match="preprocess_slices must be an integer >= 1, got 0"):
        run_embedded("tiny", ["fanout.preprocess=0"], str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()

