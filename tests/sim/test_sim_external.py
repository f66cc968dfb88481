"""External-simulator mode: sim_eval serves the policy (LBM Eval protocol), an external simulator
evaluates it over gRPC and writes rollouts, and sim_eval collects them. The embedded simulator,
stepping a remote policy through vlaforge's gRPC client, stands in for the LBM Eval container."""

import json
import threading
import time

import pytest

from vlaforge.serve.client import PolicyClient
from vlaforge.sim.evaluate import EpisodeJob, run_episode
from vlaforge.sim.external import SERVER_FILE, serve_and_collect
from vlaforge.sim.rollouts import plan_task
from vlaforge.stages.sim_eval import run


def _external_simulator(results, model: str, indices: range) -> None:
    """Wait for the announced server, then run the episodes against it like LBM Eval would."""
    deadline = time.monotonic() + 60
    while not (results / SERVER_FILE).exists():
        assert time.monotonic() < deadline, "the policy server was never announced"
        time.sleep(0.1)
    port = json.loads((results / SERVER_FILE).read_text())["port"]
    client = PolicyClient(f"127.0.0.1:{port}")
    try:
        rollouts = plan_task(str(results), model, "reach-v3", indices.start, indices.stop, 200)
        rollouts.save()
        for index in rollouts.pending():
            rollouts.update(run_episode(client, EpisodeJob("reach-v3", index, ("corner",), 32, 15)))
    finally:
        client.close()


def test_served_policy_is_evaluated_by_an_external_simulator(tmp_path):
    results, out = tmp_path / "lbm", tmp_path / "out"
    outcome = {}

    def stage():
        try:
            outcome["report"] = run("baseline:random", "tiny", [
                "simulator=external", f"external_results_uri={results}", "policy_port=0", "tasks=[reach-v3]"],
                str(out), "served_policy", "0:3")
        except Exception as err:  # reported by the assertion below
            outcome["error"] = err

    thread = threading.Thread(target=stage)
    thread.start()
    _external_simulator(results, "served_policy", range(0, 3))
    thread.join(timeout=60)
    assert not thread.is_alive() and "error" not in outcome, outcome
    tasks = outcome["report"]["tasks"]
    assert tasks["reach-v3"]["episodes"] == 3 and tasks["reach-v3"]["crashed"] == 0
    (copied,) = out.glob("served_policy/ReachV3/rollouts/*/results.json")
    assert [e["scenario_index"] for e in json.loads(copied.read_text())["evaluations"]] == [0, 1, 2]


def test_missing_external_results_time_out_with_what_is_missing(tmp_path):
    with pytest.raises(TimeoutError, match=r"missing in .*: ReachV3 2 episodes \(first 0\)"):
        serve_and_collect("baseline:zero", ["reach-v3"], "0:2", str(tmp_path / "lbm"), str(tmp_path / "out"),
                          "m", 0, timeout_s=0.5, poll_s=0.1)
    assert json.loads((tmp_path / "lbm" / SERVER_FILE).read_text())["tasks"] == ["ReachV3"]
    with pytest.raises(ValueError, match="external_results_uri"):
        run("baseline:zero", "tiny", "simulator=external", str(tmp_path / "out"), "m")
