"""The step_analysis settings (the ``step_analysis`` section of a preset)."""

from __future__ import annotations

from dataclasses import dataclass

from vlaforge.analysis.guarantee import GUARANTEES, TWO_SIDED
from vlaforge.config import ConfigError

CRASHED_AS_FAILURE = "failure"
REFUSE_CRASHED = "refuse"
CRASH_POLICIES = (CRASHED_AS_FAILURE, REFUSE_CRASHED)


@dataclass
class AnalysisConfig:
    alpha: float = 0.05  # family-wise significance level (Bonferroni over the pairs of models)
    guarantee: str = TWO_SIDED  # two-sided: alpha over both directions; per-direction: alpha each (VLA Foundry)
    crashed: str = CRASHED_AS_FAILURE  # crashed episodes: failure (count as failures) or refuse (an error)
    seed: int = 0  # seed of the aggregate shuffle and of STEP's randomised decisions

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"step_analysis.alpha must lie in (0, 1), got {self.alpha}")
        if self.guarantee not in GUARANTEES:
            raise ConfigError(f"step_analysis.guarantee must be one of {', '.join(GUARANTEES)}, "
                              f"got {self.guarantee!r}")
        if self.crashed not in CRASH_POLICIES:
            raise ConfigError(f"step_analysis.crashed must be one of {', '.join(CRASH_POLICIES)}, "
                              f"got {self.crashed!r}")
