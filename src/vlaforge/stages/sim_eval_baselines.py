"""The sim_eval_baselines stage: the policies that need no training, evaluated with sim_eval's closed loop."""

from __future__ import annotations

from vlaforge.sim.evaluate import flat_metrics
from vlaforge.stages import sim_eval

__all__ = ["flat_metrics", "run"]


def run(baselines: str, preset: str, overrides: str | list[str], out_uri: str, episodes: str = "") -> dict[str, dict]:
    """Evaluate comma-separated baseline names (expert, random, zero) into one ``out_uri``, each as
    its own model; returns their reports by name."""
    names = [b.strip() for b in baselines.split(",") if b.strip()]
    if not names:
        raise ValueError("no baseline named; give e.g. 'expert,random'")
    return {name: sim_eval.run(f"baseline:{name}", preset, overrides, out_uri, name, episodes) for name in names}
