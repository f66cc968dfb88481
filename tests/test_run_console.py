"""The console of `vlaforge run`: a real kfp.local pipeline's output routed into per-task log files, one
line per task on the console (position, status, wall time, key figures), cache hits and failures."""

import io
import json

import pytest
from kfp import dsl, local
from kfp.dsl import Metrics, Output

from vlaforge.run_console import StageConsole, key_figures, output_metadata

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tokenize(metrics: Output[Metrics]):
    """Stands in for the tokenize stage: a line on stdout and the metric its console line shows."""
    print("tokenizing the corpus now")
    metrics.log_metric("train_samples", 1234)
    with open(metrics.path, "w") as f:
        f.write("{}")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def llm_pretrain(fail: bool) -> str:
    print("training the language model")
    if fail:
        raise ValueError("the loss is not finite")
    return "ok"


@dsl.pipeline(name="console-test")
def two_stages(fail: bool = False):
    tok = tokenize()
    llm_pretrain(fail=fail).after(tok)


def run_in_console(tmp_path, name: str, fail: bool = False, caching: bool = False) -> tuple[StageConsole, str]:
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               enable_caching=caching, cache_root=str(tmp_path / "cache"))
    out = io.StringIO()
    with StageConsole(tmp_path / name, 2, out) as console:
        try:
            two_stages(fail=fail)
        except RuntimeError:
            pass
    return console, out.getvalue()


def test_one_line_per_stage_and_the_full_logs_in_files(tmp_path):
    console, printed = run_in_console(tmp_path, "logs")
    lines = printed.splitlines()
    assert len(lines) == 2, printed
    assert lines[0].startswith("[1/2] tokenize") and " done " in lines[0] and lines[0].endswith(
        "1234 training sequences")
    assert lines[1].startswith("[2/2] llm-pretrain") and " done " in lines[1]
    assert "KFP Executor" not in printed and "executor_input" not in printed
    tok_log = (tmp_path / "logs" / "tokenize.log").read_text()
    assert "tokenizing the corpus now" in tok_log and "Executing task 'tokenize'" in tok_log
    assert "\x1b[" not in tok_log  # colour codes stripped
    assert "training the language model" in (tmp_path / "logs" / "llm-pretrain.log").read_text()
    assert console.lines == lines and console.failed == []


def test_a_failed_stage_names_its_log(tmp_path):
    console, printed = run_in_console(tmp_path, "logs", fail=True)
    last = printed.splitlines()[-1]
    log = tmp_path / "logs" / "llm-pretrain.log"
    assert last.startswith("[2/2] llm-pretrain") and "failure" in last and str(log) in last
    assert "the loss is not finite" in log.read_text()
    assert console.failed == ["llm-pretrain"]


def test_cache_hits_are_one_line_each(tmp_path):
    run_in_console(tmp_path, "first", caching=True)
    _, printed = run_in_console(tmp_path, "second", caching=True)
    assert printed.splitlines() == ["[1/2] tokenize             cached", "[2/2] llm-pretrain         cached"]


def test_key_figures_from_executor_output(tmp_path):
    executor_output = tmp_path / "executor_output.json"
    executor_output.write_text(json.dumps({"artifacts": {"metrics": {"artifacts": [{"metadata": {
        "button-press-topdown-v3/success_rate": 1.0, "drawer-open-v3/success_rate": 0.5,
        "success_rate": 0.75, "kind": "rollouts"}}]}}}))
    metadata = output_metadata(executor_output)
    assert "kind" not in metadata
    assert key_figures("sim-eval", metadata) == "button-press-topdown-v3 100%, drawer-open-v3 50%"
    baselines = {"expert/success_rate": 1.0, "expert/drawer-open-v3/success_rate": 1.0, "random/success_rate": 0.0}
    assert key_figures("sim-eval-baselines", baselines) == "expert 100%, random 0%"
    assert key_figures("no-such-stage", metadata) == ""
    assert output_metadata(tmp_path / "missing.json") == {}
