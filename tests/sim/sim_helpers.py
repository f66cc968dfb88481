"""Helpers for the simulator tests that worker processes must be able to import."""

from vlaforge.sim.env import make_env


def reset_state(job: tuple[str, int]):
    """The full simulator state right after resetting ``task`` with ``seed``."""
    task, seed = job
    return make_env(task, [], 32).reset(seed).state


def die_on_three(job: int) -> int:
    """Kill this worker process outright for job 3, else return ``job * 10``."""
    if job == 3:
        import os

        os._exit(7)
    return job * 10


def fail_on_two(job: int) -> int:
    if job == 2:
        raise ValueError("job two is bad")
    return job * 10
