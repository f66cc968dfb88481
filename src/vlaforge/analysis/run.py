"""The analysis behind the step_analysis stage and `vlaforge analyze`: results in; tables, plots, report and
headline metrics out."""

from __future__ import annotations

from vlaforge.analysis.config import CRASHED_AS_FAILURE, AnalysisConfig
from vlaforge.analysis.episodes import collect_episodes
from vlaforge.analysis.guarantee import TWO_SIDED
from vlaforge.analysis.report import write_outputs
from vlaforge.analysis.results import apply_renames, load_renames, load_results
from vlaforge.analysis.study import analyze, headline_metrics
from vlaforge.config import load


def run_analysis(result_uris: list[str] | str, out_dir: str, rename_uri: str | None = None,
                 alpha: float = 0.05, seed: int = 0, title: str = "Policy comparison",
                 guarantee: str = TWO_SIDED, crashed: str = CRASHED_AS_FAILURE) -> dict[str, float]:
    """Load every results root, compare the models, write tables, plots, strips of the recorded episodes and
    ``report.html`` to ``out_dir``.

    ``guarantee`` (two-sided or per-direction) and ``crashed`` (failure or refuse) are described in
    :class:`~vlaforge.analysis.config.AnalysisConfig`. Returns the headline metrics (also written to
    ``out_dir/metrics.json``).
    """
    uris = [result_uris] if isinstance(result_uris, str) else list(result_uris)
    results = load_results(uris)
    if rename_uri:
        results = apply_renames(results, load_renames(rename_uri), rename_uri)
    analysis = analyze(results, alpha, seed, guarantee, crashed)
    metrics = headline_metrics(analysis)
    write_outputs(analysis, metrics, out_dir, title=title, sources=uris, episodes=collect_episodes(results))
    return metrics


def load_config(preset: str = "tiny", overrides: str | list[str] | None = None) -> AnalysisConfig:
    """The ``step_analysis`` section of ``preset`` with ``key=value`` overrides (defaults where it has none)."""
    return load(AnalysisConfig, preset, overrides, "step_analysis")
