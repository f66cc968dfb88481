"""Resolve a policy spec to a :class:`~vlaforge.policy.Policy`.

``baseline:<name>`` names a policy that needs no training (``baseline:expert``, ``baseline:random``,
``baseline:zero``); ``grpc://host:port`` is a policy served by ``vlaforge serve``; anything else is
the URI of a trained policy bundle (local path or s3://), optionally with inference settings as a
query string: ``runs/policy?execute_steps=8&flow_steps=4`` (ablations without retraining).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from vlaforge.policy.interface import Policy

BASELINE_PREFIX = "baseline:"
GRPC_PREFIX = "grpc://"
BUNDLE_SETTINGS = {"execute_steps", "flow_steps"}  # inference settings a bundle spec's query string may set


def load_policy(spec: str, **kwargs) -> Policy:
    if spec.startswith(BASELINE_PREFIX):
        from vlaforge.sim.baselines import make_baseline

        return make_baseline(spec[len(BASELINE_PREFIX):], **kwargs)
    if spec.startswith(GRPC_PREFIX):
        from vlaforge.serve.client import PolicyClient

        return PolicyClient(spec[len(GRPC_PREFIX):], **kwargs)
    from vlaforge.policy.bundle import load_bundle_policy

    uri, _, query = spec.partition("?")
    return load_bundle_policy(uri, **_bundle_settings(spec, query), **kwargs)


def _bundle_settings(spec: str, query: str) -> dict[str, int]:
    """``execute_steps=8&flow_steps=4`` -> positive ints; an unknown name or a bad value names itself."""
    settings = dict(parse_qsl(query, strict_parsing=True)) if query else {}
    unknown = sorted(set(settings) - BUNDLE_SETTINGS)
    if unknown:
        raise ValueError(f"policy spec {spec!r}: unknown setting(s) {unknown}; known: {sorted(BUNDLE_SETTINGS)}")
    bad = sorted(k for k, v in settings.items() if not (v.isdigit() and int(v) > 0))
    if bad:
        raise ValueError(f"policy spec {spec!r}: {', '.join(bad)} must be a positive integer")
    return {k: int(v) for k, v in settings.items()}
