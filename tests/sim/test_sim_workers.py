"""Worker pool: a failing job or a dying worker costs only its own result."""

from sim_helpers import die_on_three, fail_on_two

from vlaforge.sim.workers import run_jobs


def test_exceptions_become_failure_messages_inline_and_in_workers():
    for workers in (0, 2):
        out = {job: (result, error) for job, result, error in run_jobs(fail_on_two, range(5), workers)}
        assert {j: r for j, (r, e) in out.items() if e is None} == {0: 0, 1: 10, 3: 30, 4: 40}
        assert out[2][0] is None and out[2][1].startswith("ValueError: job two is bad (sim_helpers.py:")


def test_a_dead_worker_fails_only_its_job_and_the_rest_go_on():
    out = {job: (result, error) for job, result, error in run_jobs(die_on_three, range(6), 1)}
    assert sorted(out) == list(range(6))
    assert "worker process died" in out[3][1]
    assert {j: r for j, (r, e) in out.items() if j != 3} == {0: 0, 1: 10, 2: 20, 4: 40, 5: 50}
