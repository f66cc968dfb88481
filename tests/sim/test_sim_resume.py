"""A killed evaluation resumes: re-running the same request fills in only the missing episodes."""

import json
import os
import signal
import subprocess
import sys
import time

EPISODES = 6


def _command(out) -> list[str]:
    return [sys.executable, "-m", "vlaforge.cli", "sim-eval", "--policy", "baseline:random", "--out", str(out),
            "--episodes", f"0:{EPISODES}", "--set", "tasks=[reach-v3]", "--set", "workers=2",
            "--set", f"videos_per_task={EPISODES}", "--set", "image_size=32", "--set", "max_steps=40"]


def _entries(out) -> tuple[list, list[dict]]:
    files = sorted(out.glob("random/ReachV3/rollouts/*/results.json"))
    return files, [e for f in files for e in json.loads(f.read_text())["evaluations"]]


def test_killed_evaluation_resumes_with_every_index_once(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.Popen(_command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(not e["is_pending"] for e in _entries(out)[1]) >= 2:  # files are replaced atomically
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"evaluation ended before it could be killed: {proc.stderr.read()[-2000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the evaluation and its worker processes
        proc.wait()
    files, before = _entries(out)
    finished_before = {e["scenario_index"]: e for e in before if not e["is_pending"]}
    assert len(files) == 1 and len(before) == EPISODES
    assert 2 <= len(finished_before) < EPISODES, "the kill came too late to test resuming"

    rerun = subprocess.run(_command(out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{EPISODES - len(finished_before)} episodes to run" in rerun.stderr
    files, after = _entries(out)
    assert len(files) == 1
    assert sorted(e["scenario_index"] for e in after) == list(range(EPISODES))
    assert all(not e["is_pending"] and e["is_success"] is not None for e in after)
    for e in after:  # what finished before the kill was kept, not run again
        if e["scenario_index"] in finished_before:
            assert e == finished_before[e["scenario_index"]]
    assert len(list(out.glob("random/ReachV3/rollouts/*/videos/*.gif"))) == EPISODES
