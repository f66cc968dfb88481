"""Pairwise sequential comparisons of models with Bonferroni correction."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from vlaforge.analysis.guarantee import TWO_SIDED
from vlaforge.analysis.lai_test import lai_test
from vlaforge.analysis.step_test import UNDECIDED, step_test

STEP_MAX_N = 500


def bonferroni_alpha(n_models: int, alpha: float) -> float:
    """Per-pair level for ``n_models`` models at family-wise level ``alpha``."""
    pairs = n_models * (n_models - 1) // 2
    return alpha / max(pairs, 1)


def sequential_test(outcomes0, outcomes1, n_max: int, alpha: float, seed: int = 0,
                    guarantee: str = TWO_SIDED) -> tuple[str, int, str]:
    """STEP for ``n_max <= 500``, else Lai's test: (decision, pairs used, test name)."""
    if n_max <= STEP_MAX_N:
        return (*step_test(outcomes0, outcomes1, n_max, alpha, seed, guarantee), "STEP")
    return (*lai_test(outcomes0, outcomes1, n_max, alpha, guarantee), "Lai")


@dataclass(frozen=True)
class PairResult:
    scope: str
    model0: str
    model1: str
    n: int
    test: str
    alpha: float
    decision: str
    decided_at: int | None

    @property
    def significant(self) -> bool:
        return self.decision != UNDECIDED


def compare_all(scope: str, outcomes: dict[str, list[bool]], n_max: int, alpha: float, seed: int = 0,
                guarantee: str = TWO_SIDED) -> list[PairResult]:
    """Every pair of models (sorted by name), each cut to the shorter sequence, at Bonferroni level."""
    models = sorted(outcomes)
    pair_alpha = bonferroni_alpha(len(models), alpha)
    out = []
    for m0, m1 in itertools.combinations(models, 2):
        a, b = outcomes[m0], outcomes[m1]
        decision, used, test = sequential_test(a, b, n_max, pair_alpha, seed, guarantee)
        out.append(PairResult(scope, m0, m1, min(len(a), len(b)), test, pair_alpha, decision,
                              used if decision != UNDECIDED else None))
    return out
