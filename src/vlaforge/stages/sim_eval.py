"""The sim_eval stage: closed-loop evaluation of a policy in the embedded simulator, or an external one."""

from __future__ import annotations

from vlaforge import storage
from vlaforge.artifacts import check_output, check_policy
from vlaforge.config import load, split_overrides
from vlaforge.sim.evaluate import EvalConfig, evaluate, evaluate_external, flat_metrics, video_page

__all__ = ["flat_metrics", "load_config", "run"]


def _quote_range(override: str) -> str:
    """``episodes=5:15`` -> ``episodes="5:15"``: unquoted, YAML reads some ranges as base-60 numbers."""
    key, _, value = override.partition("=")
    if key.strip() == "episodes" and value.strip()[:1] not in ("'", '"'):
        return f'{key}="{value.strip()}"'
    return override


def load_config(preset: str, overrides: str | list[str]) -> EvalConfig:
    """The preset's ``sim_eval`` section with overrides."""
    return load(EvalConfig, preset, [_quote_range(o) for o in split_overrides(overrides)], "sim_eval")


def run(policy_spec: str, preset: str, overrides: str | list[str], out_uri: str,
        model_name: str | None = None, episodes: str = "", videos_uri: str = "") -> dict:
    """The preset's ``sim_eval`` section with overrides; ``episodes`` (start:end) replaces the section's
    range when given; ``videos_uri`` receives an HTML page of the videos."""
    cfg = load_config(preset, overrides)
    if episodes:
        cfg.episodes = episodes
    check_output(out_uri, "sim_eval")
    check_policy(policy_spec)
    if cfg.simulator == "external":
        rep = evaluate_external(policy_spec, cfg, preset, out_uri, model_name)
    elif cfg.simulator == "embedded":
        rep = evaluate(policy_spec, cfg, out_uri, model_name)
    else:
        raise ValueError(f"sim_eval.simulator must be 'embedded' or 'external', got '{cfg.simulator}'")
    if videos_uri:
        storage.write_text(videos_uri, video_page(out_uri, f"sim_eval: {rep['model']}"))
    return rep
