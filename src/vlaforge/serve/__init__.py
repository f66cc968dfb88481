"""The LBM Eval-compatible gRPC policy server (``vlaforge serve``) and its client.

- :mod:`.server`: :func:`serve_policy` / :class:`PolicyService`, per-client state, health, metadata.
- :mod:`.batching`: several clients' predictions in one forward pass.
- :mod:`.mapping`: protocol observation <-> :class:`~vlaforge.policy.Observation`, action <-> poses.
- :mod:`.client`: :class:`PolicyClient`, a served policy seen through the Policy protocol.
- :mod:`.protos`: ``lbm_policy_interface.proto`` and its generated stubs (:mod:`.protogen`).
"""
