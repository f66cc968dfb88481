"""Which error guarantee a pairwise decision carries.

Both sequential tests (STEP and Lai's) are mirrored: one rejection region for "p0 < p1" and its mirror
image for "p0 > p1". Their level can be spent in two ways:

- ``two-sided`` (the default): each direction gets ``alpha / 2``, so two policies with equal success
  rates are declared different, in either direction, with probability at most ``alpha``.
- ``per-direction``: each direction gets the full ``alpha``, as VLA Foundry runs the reference STEP
  library (``get_mirrored_test(..., alpha)`` in "comparison" mode). A wrong "p0 < p1" has probability at
  most ``alpha`` and so has a wrong "p0 > p1"; equal policies are separated with probability up to
  ``2 * alpha``. Use it to reproduce published VLA Foundry decisions.
"""

from __future__ import annotations

TWO_SIDED = "two-sided"
PER_DIRECTION = "per-direction"
GUARANTEES = (TWO_SIDED, PER_DIRECTION)


def check_guarantee(guarantee: str) -> str:
    if guarantee not in GUARANTEES:
        raise ValueError(f"guarantee must be one of {', '.join(GUARANTEES)}, got {guarantee!r}")
    return guarantee


def direction_alpha(alpha: float, guarantee: str) -> float:
    """The false-decision probability each direction of a mirrored test may spend."""
    return alpha / 2.0 if check_guarantee(guarantee) == TWO_SIDED else alpha


def describe(guarantee: str, alpha: float) -> str:
    """The guarantee of the decisions in words, for the report (``alpha`` is the family-wise level)."""
    if check_guarantee(guarantee) == TWO_SIDED:
        return (f"Guarantee: two-sided. Where policies have equal success rates, the chance that any of them is "
                f"declared different from another, in either direction, is at most {alpha:g}.")
    return (f"Guarantee: per direction, as VLA Foundry reports with the reference STEP library. Where policies "
            f"have equal success rates, the chance of a wrong \"p0 < p1\" anywhere is at most {alpha:g}, and so "
            f"is the chance of a wrong \"p0 > p1\": equal policies can be declared different with probability "
            f"up to {2 * alpha:g}.")
