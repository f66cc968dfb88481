"""Statistical comparison of policies from rollout results (the step_analysis stage).

Per (task, model) success rates with Clopper-Pearson intervals, pairwise STEP / Lai sequential tests
with Bonferroni correction, compact letter display, balanced aggregation across tasks, and a report.
"""

from vlaforge.analysis.results import ResultsError, check_episode_range, load_results
from vlaforge.analysis.run import run_analysis

__all__ = ["ResultsError", "check_episode_range", "load_results", "run_analysis"]
