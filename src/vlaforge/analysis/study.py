"""The comparison itself: per-task and aggregate summaries, pairwise decisions, letters, headline metrics."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from vlaforge.analysis.aggregate import balanced_outcomes, common_tasks
from vlaforge.analysis.comparison import PairResult, compare_all
from vlaforge.analysis.config import CRASH_POLICIES, CRASHED_AS_FAILURE, REFUSE_CRASHED
from vlaforge.analysis.guarantee import TWO_SIDED, check_guarantee
from vlaforge.analysis.letters import compact_letter_display
from vlaforge.analysis.results import ResultSet, ResultsError
from vlaforge.analysis.summary import Summary, summarize

log = logging.getLogger(__name__)

_SHOWN_CRASHES = 10  # scenario indices named per (model, task) in warnings and errors
BALANCED = "balanced aggregate"
UNWEIGHTED = "unweighted aggregate"


@dataclass
class Analysis:
    """Everything the report shows."""

    budget: int
    alpha: float
    seed: int
    guarantee: str
    models: list[str]
    tasks: list[str]
    rows: list[Summary]
    pairs: dict[str, list[PairResult]]
    letters: dict[str, dict[str, str]]
    common: list[str]
    excluded: list[str]
    balanced: list[Summary] = field(default_factory=list)
    unweighted: list[Summary] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _letters(rows: list[Summary], pairs: list[PairResult]) -> dict[str, str]:
    order = [r.model for r in sorted(rows, key=lambda r: (-r.rate, r.model))]
    return compact_letter_display(order, [(p.model0, p.model1) for p in pairs if p.significant])


def crash_report(results: ResultSet) -> list[str]:
    """One line per (model, task) with crashed episodes: how many, which, and in which file(s)."""
    lines = []
    for (task, model), crashed in sorted(results.crashes().items(), key=lambda kv: (kv[0][1], kv[0][0])):
        sources = ", ".join(sorted({e.source for e in crashed}))
        shown = ", ".join(str(e.scenario_index) for e in crashed[:_SHOWN_CRASHES])
        more = ", ..." if len(crashed) > _SHOWN_CRASHES else ""
        lines.append(f"model {model} crashed on {len(crashed)} episode(s) of task {task} (scenario_index "
                     f"{shown}{more} in {sources})")
    return lines


def analyze(results: ResultSet, alpha: float = 0.05, seed: int = 0, guarantee: str = TWO_SIDED,
            crashed: str = CRASHED_AS_FAILURE) -> Analysis:
    """Summaries, pairwise decisions and letters per task and for the balanced aggregate.

    Crashed episodes count as failures (``crashed="failure"``) or make the analysis refuse the results
    with a :class:`ResultsError` naming every (model, task) that crashed (``crashed="refuse"``).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    check_guarantee(guarantee)
    if crashed not in CRASH_POLICIES:
        raise ValueError(f"crashed must be one of {', '.join(CRASH_POLICIES)}, got {crashed!r}")
    crashes = crash_report(results)
    if crashes and crashed == REFUSE_CRASHED:
        raise ResultsError(f"{'; '.join(crashes)}: refused (crashed={REFUSE_CRASHED}); rerun those episodes "
                           f"or count them as failures (crashed={CRASHED_AS_FAILURE})")
    start = time.perf_counter()
    rows = summarize(results)
    models, tasks = results.models, results.tasks
    outcomes = {m: {t: results.outcomes(t, m, crashed_as_failure=True) for t in tasks} for m in models}
    pairs, letters = {}, {}
    for task in tasks:
        task_rows = [r for r in rows if r.task == task and r.total > 0]
        compared = {r.model: outcomes[r.model][task] for r in task_rows}
        pairs[task] = compare_all(task, compared, results.budget, alpha, seed, guarantee)
        letters[task] = _letters(task_rows, pairs[task])
    common, excluded = common_tasks({m: {t: len(o) for t, o in per.items()} for m, per in outcomes.items()})
    result = Analysis(results.budget, alpha, seed, guarantee, models, tasks, rows, pairs, letters, common,
                      excluded)
    for line in crashes:
        result.warnings.append(f"{line}: counted as failures")
        log.warning(result.warnings[-1])
    if excluded:
        result.warnings.append(f"tasks excluded from the aggregate (not every model has a completed or crashed "
                               f"episode): {', '.join(excluded)}")
        log.warning(result.warnings[-1])
    if common:
        balanced = balanced_outcomes(outcomes, common, seed)
        for m in models:
            seq = balanced[m]
            done = [r for r in rows if r.model == m and r.task in common]
            result.balanced.append(Summary(BALANCED, m, len(seq), int(sum(seq)), 0, 0, None))
            result.unweighted.append(Summary(UNWEIGHTED, m, sum(r.total for r in done),
                                             sum(r.successes for r in done), sum(r.pending for r in done),
                                             sum(r.crashed for r in done), None, sum(r.completed for r in done)))
        pairs[BALANCED] = compare_all(BALANCED, balanced, results.budget * len(common), alpha, seed, guarantee)
        letters[BALANCED] = _letters(result.balanced, pairs[BALANCED])
    else:
        result.warnings.append("no task has completed or crashed episodes of every model: no aggregate comparison")
        log.warning(result.warnings[-1])
    n_pairs = sum(len(p) for p in pairs.values())
    log.info("analysed %d models x %d tasks: %d pairwise tests in %.2f s", len(models), len(tasks), n_pairs,
             time.perf_counter() - start)
    return result


def _metric_name(*parts: str) -> str:
    return ".".join(re.sub(r"[^A-Za-z0-9_-]+", "_", p) for p in parts)


def headline_metrics(analysis: Analysis) -> dict[str, float]:
    """Numbers for the KFP Metrics artifact: per model aggregate rates and intervals, counts."""
    metrics: dict[str, float] = {
        "models": len(analysis.models), "tasks": len(analysis.tasks), "common_tasks": len(analysis.common),
        "significant_pairs": sum(p.significant for p in analysis.pairs.get(BALANCED, [])),
    }
    for bal, unw in zip(analysis.balanced, analysis.unweighted):
        low, high = bal.ci
        metrics[_metric_name(bal.model, "balanced_pct")] = bal.pct if bal.total else float("nan")
        metrics[_metric_name(bal.model, "ci90_low_pct")] = 100 * low
        metrics[_metric_name(bal.model, "ci90_high_pct")] = 100 * high
        metrics[_metric_name(bal.model, "unweighted_pct")] = unw.pct if unw.total else float("nan")
        metrics[_metric_name(bal.model, "episodes")] = unw.total
        metrics[_metric_name(bal.model, "crashed")] = unw.crashed
    return metrics
