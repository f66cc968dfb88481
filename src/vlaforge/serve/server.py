"""The LBM Eval policy server: a vlaforge policy behind ``lbm_policy_interface`` gRPC services.

State is kept per ``client_identifier`` (never per connection: the LBM Eval client opens one per
call): a :class:`~vlaforge.policy.ControlState` (observation history + the action chunk being
executed) and the seed of the last ``PolicyReset``. A step whose client still has queued actions is
answered at once; steps that need a new chunk are batched across clients (:mod:`.batching`).
Observations and actions are translated by :mod:`.mapping`. Bad observations are answered with
``INVALID_ARGUMENT`` naming the field, policy failures with ``INTERNAL``; the server keeps serving.

:func:`serve_policy` starts the server in-process (the embedded simulator and the tests use it);
``vlaforge serve`` (:mod:`vlaforge.cli.serve`) runs it as a command.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import google.protobuf
import grpc
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from vlaforge import __version__, config as vconfig
from vlaforge.policy.interface import ControlState, Policy
from vlaforge.serve.batching import PolicyError, PredictBatcher, chunk_seed
from vlaforge.serve.mapping import (GRPC_OPTIONS, MappingConfig, MappingError, action_to_proto,
                                    observation_from_proto)
from vlaforge.serve.openpi import OpenpiConfig
from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb
from vlaforge.serve.protos import lbm_policy_interface_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

DEFAULT_PORT = 50051
PROTOCOLS = ("grpc", "openpi")
ACTIVE_S = 1.0  # a client silent for longer is not waited for by a batch
SERVICE_NAMES = [s.full_name for s in pb.DESCRIPTOR.services_by_name.values()]


@dataclass
class ServeConfig:
    """Policy server settings (preset section ``serve``)."""

    batch_window_ms: float = 5.0  # how long a batch waits for more clients
    max_batch: int = 8  # most histories in one predict call
    max_workers: int = 32  # gRPC handler threads (>= concurrent clients)
    client_timeout_s: float = 3600.0  # forget clients silent for this long
    protocol: str = "grpc"  # grpc: LBM Eval's gRPC services; openpi: openpi's websocket + msgpack-numpy
    mapping: MappingConfig = field(default_factory=MappingConfig)  # gRPC messages <-> policy
    openpi: OpenpiConfig = field(default_factory=OpenpiConfig)  # openpi observation maps -> policy

    def __post_init__(self):
        if self.protocol not in PROTOCOLS:
            raise vconfig.ConfigError(f"serve.protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        for key in ("max_batch", "max_workers"):
            if getattr(self, key) < 1:
                raise vconfig.ConfigError(f"serve.{key} must be at least 1, got {getattr(self, key)}")
        for key in ("batch_window_ms", "client_timeout_s"):
            if getattr(self, key) < 0:
                raise vconfig.ConfigError(f"serve.{key} must not be negative, got {getattr(self, key)}")


def load_serve_config(preset: str = "tiny", overrides: str | list[str] | None = None) -> ServeConfig:
    return vconfig.load(ServeConfig, preset, overrides, section="serve")


@dataclass
class _Client:
    state: ControlState
    seed: int | None
    chunks: int = 0  # chunks planned since the reset
    left: int = 0  # actions left in the current chunk
    last_seen: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _plain(value):
    """``value`` with everything YAML cannot represent safely turned into strings."""
    return json.loads(json.dumps(value, default=str))


def policy_metadata(policy: Policy, checkpoint_path: str, config: ServeConfig) -> pb.PolicyMetadata:
    """What ``GetPolicyMetadata`` reports: name, source, the policy's config as YAML, runtime facts."""
    described = {
        "policy": checkpoint_path, "name": policy.name, "n_obs_steps": policy.n_obs_steps,
        "execute_steps": policy.execute_steps, "cameras": getattr(policy, "cameras", None),
        "image_size": getattr(policy, "image_size", None), "action_dim": getattr(policy, "action_dim", None),
        "config": getattr(policy, "config", None), "serve": vconfig.to_dict(config),
    }
    runtime = {
        "vlaforge_version": __version__, "python": platform.python_version(), "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__, "hostname": socket.gethostname(), "pid": str(os.getpid()),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "max_batch": str(config.max_batch),
        "batch_window_ms": str(config.batch_window_ms),
    }
    return pb.PolicyMetadata(
        name=policy.name, checkpoint_path=checkpoint_path,
        raw_policy_config=yaml.safe_dump(_plain(described), sort_keys=False),
        is_language_conditioned=bool(getattr(policy, "is_language_conditioned", hasattr(policy, "cameras"))),
        runtime_information=runtime)


def _client_id(request, context) -> str:
    if not request.client_identifier:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "client_identifier: must not be empty")
    return request.client_identifier


class PolicyService(pb_grpc.PolicyStepServiceServicer, pb_grpc.PolicyResetServiceServicer,
                    pb_grpc.GetPolicyMetadataServiceServicer):
    """The three LBM Eval services over one policy, with per-client state and batched prediction."""

    def __init__(self, policy: Policy, config: ServeConfig | None = None, checkpoint_path: str = ""):
        self.policy = policy
        self.config = config or ServeConfig()
        self.cameras = getattr(policy, "cameras", None)
        self.image_size = getattr(policy, "image_size", None)
        self.metadata = policy_metadata(policy, checkpoint_path, self.config)
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self.steps = 0
        self.batcher = PredictBatcher(policy, self.config.batch_window_ms / 1000, self.config.max_batch,
                                      expected=self._due_clients)

    def close(self) -> None:
        self.batcher.close()

    @property
    def clients(self) -> list[str]:
        with self._lock:
            return list(self._clients)

    def _new_client(self, seed: int | None) -> _Client:
        return _Client(ControlState(self.policy.n_obs_steps, self.policy.execute_steps), seed)

    def _client(self, client_id: str, reset: bool = False, seed: int | None = None) -> _Client:
        now = time.monotonic()
        with self._lock:
            stale = [k for k, c in self._clients.items() if now - c.last_seen > self.config.client_timeout_s]
            for key in stale:
                log.info("forgetting client %s (silent for over %.0f s)", key, self.config.client_timeout_s)
                del self._clients[key]
            client = self._clients.get(client_id)
            if reset or client is None:
                if client is None and not reset:
                    log.warning("client %s stepped without PolicyReset; starting it unseeded", client_id)
                client = self._clients[client_id] = self._new_client(seed)
            client.last_seen = now
            return client

    def _due_clients(self) -> int:
        """Clients active in the last ``ACTIVE_S`` whose next step needs a new chunk."""
        now = time.monotonic()
        with self._lock:
            return sum(c.left == 0 and now - c.last_seen < ACTIVE_S for c in self._clients.values())

    def PolicyReset(self, request, context):
        client_id = _client_id(request, context)
        seed = request.seed or None  # seed 0 means "no seed"
        self._client(client_id, reset=True, seed=seed)
        log.info("reset client %s (seed %s)", client_id, seed)
        return pb.PolicyResetResponse(success=True)

    def PolicyStep(self, request, context):
        client_id = _client_id(request, context)
        try:
            obs = observation_from_proto(request.observation, self.config.mapping, self.cameras, self.image_size)
        except MappingError as err:
            log.warning("client %s: bad observation: %s", client_id, err)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        client = self._client(client_id)
        with client.lock:
            if client.state.observe(obs):
                try:
                    chunk = self.batcher.predict(client.state.history(), chunk_seed(client.seed, client.chunks))
                except PolicyError as err:
                    context.abort(grpc.StatusCode.INTERNAL, str(err))
                client.state.plan(chunk)
                client.chunks += 1
                client.left = min(len(chunk), client.state.execute_steps)
            action = client.state.next_action()
            client.left -= 1
        try:
            reply = action_to_proto(action, request.observation.robot.actual, self.config.mapping)
        except MappingError as err:
            context.abort(grpc.StatusCode.INTERNAL, f"policy '{self.policy.name}': {err}")
        now = time.time()
        reply.timestamp_sent.sec, reply.timestamp_sent.nanosec = int(now), int(now % 1 * 1e9)
        with self._lock:
            self.steps += 1
        return pb.PolicyStepResponse(success=True, action=reply)

    def GetPolicyMetadata(self, request, context):
        return pb.GetPolicyMetadataResponse(success=True, policy_metadata=self.metadata)


class PolicyServer(grpc.Server):
    """A started gRPC server serving a :class:`PolicyService`; ``port`` is the bound port.

    Stopping it marks health NOT_SERVING and ends the batcher too.
    """

    def __init__(self, server: grpc.Server, service: PolicyService, health_servicer, port: int):
        self._server, self.service, self._health, self.port = server, service, health_servicer, port

    def add_generic_rpc_handlers(self, generic_rpc_handlers):
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(self, service_name, method_handlers):
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address):
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address, server_credentials):
        return self._server.add_secure_port(address, server_credentials)

    def start(self):
        self._server.start()

    def stop(self, grace=None):
        self._health.enter_graceful_shutdown()
        event = self._server.stop(grace)
        threading.Thread(target=lambda: (event.wait(), self.service.close()), daemon=True).start()
        return event

    def wait_for_termination(self, timeout=None):
        return self._server.wait_for_termination(timeout)


def resolve_policy(policy: Policy | str, checkpoint_path: str | None = None) -> tuple[Policy, str]:
    """``policy`` loaded when it is a spec (:func:`~vlaforge.policy.specs.load_policy`), and its checkpoint path."""
    if isinstance(policy, str):
        from vlaforge.policy.specs import load_policy

        return load_policy(policy), checkpoint_path or policy
    return policy, checkpoint_path or ""


def serve_policy(policy: Policy | str, port: int = DEFAULT_PORT, host: str = "[::]",
                 config: ServeConfig | None = None, checkpoint_path: str | None = None) -> PolicyServer:
    """Start serving ``policy`` (a Policy or a spec for :func:`~vlaforge.policy.specs.load_policy`).

    ``port=0`` picks a free port (read it from the result's ``port``). Health answers SERVING
    as soon as this returns. ``checkpoint_path`` defaults to the spec.
    """
    policy, checkpoint_path = resolve_policy(policy, checkpoint_path)
    config = config or ServeConfig()
    service = PolicyService(policy, config, checkpoint_path or "")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.max_workers,
                                                    thread_name_prefix="policy-server"),
                         options=[*GRPC_OPTIONS, ("grpc.so_reuseport", 0)])  # a taken port is an error
    pb_grpc.add_PolicyStepServiceServicer_to_server(service, server)
    pb_grpc.add_PolicyResetServiceServicer_to_server(service, server)
    pb_grpc.add_GetPolicyMetadataServiceServicer_to_server(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as err:
        service.close()
        raise RuntimeError(f"cannot listen on {address}: {err}") from err
    if not bound:
        service.close()
        raise RuntimeError(f"cannot listen on {address}")
    server.start()
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving policy '%s' on %s:%d (max batch %d, window %.1f ms)", policy.name, host, bound,
             config.max_batch, config.batch_window_ms)
    return PolicyServer(server, service, health_servicer, bound)
