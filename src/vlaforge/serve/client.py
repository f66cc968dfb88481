"""A policy that runs on a policy server: the embedded simulator's way to evaluate over the network.

:class:`PolicyClient` implements the :class:`~vlaforge.policy.Policy` protocol by speaking the LBM
Eval protocol to ``vlaforge serve`` (or any compatible server). The server keeps each episode's
observation history and action chunk, so the client is a one-step policy (``n_obs_steps`` =
``execute_steps`` = 1): ``predict`` sends every episode's newest observation as one ``PolicyStep``
(all episodes at once, so the server can batch them) and returns one-action chunks.

Episode ``i`` of a ``predict`` batch is client identifier ``<uuid>-<i>``. The client is reset
(``PolicyReset``, with that step's seed) at each episode's start, which it recognises the way
:class:`~vlaforge.policy.ControlState` marks it: a history whose oldest observation is its newest
(hence ``n_obs_steps = 2``; a one-observation history also counts as a start). So the evaluator's
loop (a fresh ControlState per episode, ``step_policy``) runs a remote policy unchanged.
Observations cross the wire without ``task`` and ``state``: privileged baselines cannot run remotely.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vlaforge.policy.interface import Observation
from vlaforge.serve.mapping import GRPC_OPTIONS, MappingConfig, action_from_proto, observation_to_proto
from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb
from vlaforge.serve.protos import lbm_policy_interface_pb2_grpc as pb_grpc


class PolicyServerError(RuntimeError):
    """The policy server rejected a call or could not be reached; ``code`` is the gRPC status."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code


def wait_serving(channel: grpc.Channel, timeout_s: float, target: str = "") -> None:
    """Block until the server's health check answers SERVING; PolicyServerError after ``timeout_s``."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    status = "no answer"
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as err:
            status = f"{err.code().name}: {err.details()}"
        if time.monotonic() > deadline:
            raise PolicyServerError(f"policy server {target} not SERVING after {timeout_s:.0f} s ({status})")
        time.sleep(0.1)


class PolicyClient:
    """A :class:`~vlaforge.policy.Policy` served at ``target`` (``host:port``)."""

    n_obs_steps = 2  # only to see episode starts; the server keeps the policy's real history
    execute_steps = 1

    def __init__(self, target: str, mapping: MappingConfig | None = None, timeout_s: float = 120.0,
                 wait_s: float = 30.0):
        self.target = target
        self.mapping = mapping or MappingConfig()
        self.timeout_s = timeout_s
        self._prefix = uuid.uuid4().hex
        self._channel = grpc.insecure_channel(target, options=GRPC_OPTIONS)
        self._step = pb_grpc.PolicyStepServiceStub(self._channel)
        self._reset = pb_grpc.PolicyResetServiceStub(self._channel)
        wait_serving(self._channel, wait_s, target)
        self.metadata = self._call(pb_grpc.GetPolicyMetadataServiceStub(self._channel).GetPolicyMetadata,
                                   pb.GetPolicyMetadataRequest(client_identifier=self.client_id(0))).policy_metadata
        self.name = f"remote:{self.metadata.name}"
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="policy-client")

    def client_id(self, slot: int) -> str:
        return f"{self._prefix}-{slot}"

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout_s)
        except grpc.RpcError as err:
            raise PolicyServerError(f"policy server {self.target}: {err.code().name}: {err.details()}",
                                    err.code()) from err

    def _act(self, slot: int, history: list[Observation], seed: int | None) -> np.ndarray:
        obs = history[-1]
        if history[0] is obs:  # an episode's first step
            self._call(self._reset.PolicyReset, pb.PolicyResetRequest(client_identifier=self.client_id(slot),
                                                                      seed=seed or 0))
        request = pb.PolicyStepRequest(client_identifier=self.client_id(slot),
                                       observation=observation_to_proto(obs, self.mapping))
        reply = self._call(self._step.PolicyStep, request)
        if not reply.success:
            raise PolicyServerError(f"policy server {self.target}: step of {self.client_id(slot)} not successful")
        return action_from_proto(reply.action, obs.proprio, self.mapping)[None]

    def predict(self, histories: list[list[Observation]], seed: int | None = None) -> list[np.ndarray]:
        jobs = [self._pool.submit(self._act, slot, history, seed) for slot, history in enumerate(histories)]
        return [job.result() for job in jobs]

    def close(self) -> None:
        self._pool.shutdown()
        self._channel.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
