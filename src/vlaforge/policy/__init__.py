"""Policies: the interface every policy implements (:mod:`.interface`), the specs that name one
(:mod:`.specs`: ``baseline:<name>``, ``grpc://host:port``, a bundle URI) and VLA policy bundles on
disk (:mod:`.bundle`).

Library modules import from the submodules; the names below are for users of the package.
"""

from vlaforge.policy.interface import ControlState, Observation, Policy, step_policy
from vlaforge.policy.specs import load_policy

__all__ = ["ControlState", "Observation", "Policy", "load_policy", "step_policy"]
