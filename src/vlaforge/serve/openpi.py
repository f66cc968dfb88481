"""openpi's websocket protocol: ``vlaforge serve POLICY --protocol openpi``.

Robot code written for openpi (``openpi_client.WebsocketClientPolicy``, and StarVLA, which copied its
server) talks to a policy like this, every message a binary frame of msgpack-numpy
(:mod:`.msgpack_numpy`):

- on connect the server sends its metadata (a map: policy name, cameras, image size, action
  dimension, ``execute_steps``, which observation keys it reads);
- ``infer``: the client sends an observation map, the server answers ``{"actions": (chunk_len,
  action_dim) float32, "server_timing": {"infer_ms": ...}}``; an error is answered with a text frame
  (``WebsocketClientPolicy.infer`` raises it as ``RuntimeError``) and the connection stays usable;
- reset: a new connection starts a new episode; ``{"reset": true}`` (optional ``"seed"``) resets the
  connection's episode in place and is answered ``{"reset": true}``.
- ``GET /healthz`` answers 200 ``OK``.

Observation maps (nested maps are read with their keys joined by ``/``): camera frames at
``openpi.image_keys`` (message key -> policy camera; default ``images/<camera>``), HxWx3 or 3xHxW
uint8, resized to the policy's ``image_size``; proprio at ``openpi.state_key`` (``state``); the
instruction at ``openpi.prompt_key`` (``prompt``). A bad observation is refused before it reaches
the batch, so one client's mistake never fails the others'.

Each connection keeps a :class:`~vlaforge.policy.ControlState` (its observation history); every
``infer`` plans a new chunk, and concurrent connections share ``policy.predict`` calls through the
same :class:`~.batching.PredictBatcher` as the gRPC server.
"""

from __future__ import annotations

import http
import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve

from vlaforge import __version__
from vlaforge.config import ConfigError
from vlaforge.policy.interface import ControlState, Observation, Policy
from vlaforge.robotics.samples import prepare_frame
from vlaforge.serve import msgpack_numpy
from vlaforge.serve.batching import PolicyError, PredictBatcher, chunk_seed
from vlaforge.serve.mapping import MappingError

log = logging.getLogger(__name__)
ACTIVE_S = 1.0  # a connection silent for longer is not waited for by a batch
DEFAULT_PROPRIO_DIM = 4  # Observation.proprio of the Meta-World policies and the baselines


@dataclass
class OpenpiConfig:
    """Where the policy's inputs sit in an openpi observation map (preset section ``serve.openpi``)."""

    image_keys: dict[str, str] = field(default_factory=dict)  # message key -> camera; empty: images/<camera>
    state_key: str = "state"
    prompt_key: str = "prompt"
    resize: bool = True  # resize frames to the policy's image_size (else a wrong size is an error)

    def __post_init__(self):
        if not self.state_key or not self.prompt_key:
            raise ConfigError("serve.openpi.state_key and serve.openpi.prompt_key must not be empty")


def _flatten(message: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in message.items():
        key = key.decode() if isinstance(key, bytes) else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def camera_keys(config: OpenpiConfig, cameras: list[str]) -> dict[str, str]:
    """Policy camera -> the message key its frames are read from."""
    by_camera = {cam: key for key, cam in config.image_keys.items()}
    return {cam: by_camera.get(cam, f"images/{cam}") for cam in cameras}


def _frame(value, key: str, size: int | None, resize: bool) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise MappingError(f"{key}: expected an image array, got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise MappingError(f"{key}: expected uint8 pixels, got {value.dtype}")
    if value.ndim == 3 and value.shape[0] in (1, 3) and value.shape[-1] not in (1, 3):
        value = value.transpose(1, 2, 0)  # CHW, as openpi's ALOHA clients send
    if value.ndim == 2:
        value = value[..., None]
    if value.ndim != 3 or value.shape[-1] not in (1, 3) or min(value.shape[:2]) < 1:
        raise MappingError(f"{key}: expected an HxWx3 (or 3xHxW) image, got shape {value.shape}")
    frame = np.repeat(value, 3, axis=-1) if value.shape[-1] == 1 else value
    if size and frame.shape[:2] != (size, size) and not resize:
        raise MappingError(f"{key}: image is {frame.shape[0]}x{frame.shape[1]}, the policy expects {size}x{size}")
    return prepare_frame(np.ascontiguousarray(frame), size or 0)


def observation_from_message(message, config: OpenpiConfig, cameras: list[str] | None, image_size: int | None,
                             proprio_dim: int) -> Observation:
    """An :class:`Observation` from an openpi observation map; :class:`MappingError` names the bad key."""
    if not isinstance(message, dict):
        raise MappingError(f"observation: expected a map, got {type(message).__name__}")
    flat = _flatten(message)
    known = ", ".join(sorted(flat)) or "nothing"
    images = {}
    for cam, key in camera_keys(config, cameras or []).items():
        if key not in flat:
            raise MappingError(f"{key}: missing (camera {cam!r}); the observation has: {known}")
        images[cam] = _frame(flat[key], key, image_size, config.resize)
    if config.state_key not in flat:
        raise MappingError(f"{config.state_key}: missing (proprio); the observation has: {known}")
    try:
        state = np.asarray(flat[config.state_key], dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as err:
        raise MappingError(f"{config.state_key}: expected numbers, got {flat[config.state_key]!r:.80}") from err
    if state.shape != (proprio_dim,) or not np.all(np.isfinite(state)):
        raise MappingError(f"{config.state_key}: expected {proprio_dim} finite numbers, got shape {state.shape}")
    prompt = flat.get(config.prompt_key, "")
    if isinstance(prompt, bytes):
        prompt = prompt.decode("utf-8", "replace")
    if not isinstance(prompt, str):
        raise MappingError(f"{config.prompt_key}: expected a string, got {type(prompt).__name__}")
    return Observation(images=images, proprio=state, instruction=prompt)


@dataclass
class _Connection:
    state: ControlState
    seed: int | None = None
    chunks: int = 0
    last_seen: float = field(default_factory=time.monotonic)


class OpenpiService:
    """The per-connection protocol over one policy, with prediction batched across connections."""

    def __init__(self, policy: Policy, config, checkpoint_path: str = ""):
        self.policy, self.config = policy, config
        self.cameras = getattr(policy, "cameras", None)
        self.image_size = getattr(policy, "image_size", None)
        preprocessing = getattr(policy, "preprocessing", None)
        self.proprio_dim = getattr(preprocessing, "proprio_dim", DEFAULT_PROPRIO_DIM)
        self.metadata = {
            "name": policy.name, "policy": checkpoint_path, "protocol": "openpi", "vlaforge_version": __version__,
            "n_obs_steps": policy.n_obs_steps, "execute_steps": policy.execute_steps, "cameras": self.cameras,
            "image_size": self.image_size, "action_dim": getattr(policy, "action_dim", None),
            "observation": {"images": camera_keys(config.openpi, self.cameras or []),
                            "state": config.openpi.state_key, "state_dim": self.proprio_dim,
                            "prompt": config.openpi.prompt_key}}
        self._connections: dict[int, _Connection] = {}
        self._lock = threading.Lock()
        self.steps = 0
        self.batcher = PredictBatcher(policy, config.batch_window_ms / 1000, config.max_batch,
                                      expected=self._active)

    @property
    def clients(self) -> list[int]:
        with self._lock:
            return list(self._connections)

    def _active(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(now - c.last_seen < ACTIVE_S for c in self._connections.values())

    def close(self) -> None:
        self.batcher.close()

    def reply(self, conn: _Connection, data) -> bytes | str:
        """The answer to one received frame: packed bytes, or the error text."""
        conn.last_seen = time.monotonic()
        if isinstance(data, str):
            return "observation: expected a binary msgpack frame, got text"
        try:
            message = msgpack_numpy.unpackb(data)
        except ValueError as err:
            return f"observation: cannot unpack msgpack-numpy: {err}"
        if isinstance(message, dict) and message.get("reset") is True:
            seed = message.get("seed")
            if seed is not None and not isinstance(seed, int):
                return f"seed: expected an integer, got {seed!r:.40}"
            conn.state.reset()
            conn.seed, conn.chunks = seed, 0
            return msgpack_numpy.packb({"reset": True})
        try:
            obs = observation_from_message(message, self.config.openpi, self.cameras, self.image_size,
                                           self.proprio_dim)
        except MappingError as err:
            return f"bad observation: {err}"
        start = time.perf_counter()
        conn.state.observe(obs)
        try:
            chunk = self.batcher.predict(conn.state.history(), chunk_seed(conn.seed, conn.chunks))
        except PolicyError as err:
            return str(err)
        conn.chunks += 1
        with self._lock:
            self.steps += 1
        return msgpack_numpy.packb({"actions": chunk, "server_timing": {"infer_ms": (time.perf_counter() - start) * 1e3}})

    def handle(self, websocket) -> None:
        """One client connection: metadata, then one reply per received frame until it closes."""
        conn = _Connection(ControlState(self.policy.n_obs_steps, self.policy.execute_steps))
        key = id(conn)
        with self._lock:
            self._connections[key] = conn
        peer = websocket.remote_address
        log.info("openpi client %s connected", peer)
        try:
            websocket.send(msgpack_numpy.packb(self.metadata))
            for data in websocket:
                answer = self.reply(conn, data)
                if isinstance(answer, str):
                    log.warning("openpi client %s: %s", peer, answer)
                websocket.send(answer)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                del self._connections[key]
            log.info("openpi client %s disconnected", peer)


def _health(connection, request):
    if request.path == "/healthz":
        return connection.respond(http.HTTPStatus.OK, "OK\n")
    return None


class OpenpiServer:
    """A started websocket server; ``port`` is the bound port. ``stop`` also ends the batcher."""

    def __init__(self, server, service: OpenpiService):
        self._server, self.service = server, service
        self.port = server.socket.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=server.serve_forever, name="openpi-server", daemon=True)
        self._thread.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Close the listening socket and every connection; the returned event is set when done."""
        def _stop():
            self._server.shutdown()
            self._thread.join(grace)
            self.service.close()
            self._stopped.set()
        threading.Thread(target=_stop, daemon=True).start()
        return self._stopped

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """True when ``timeout`` passed while still serving (as ``grpc.Server.wait_for_termination``)."""
        return not self._stopped.wait(timeout)


def serve_openpi(policy: Policy, checkpoint_path: str = "", *, port: int, host: str, config) -> OpenpiServer:
    """Start serving ``policy`` with openpi's websocket protocol (``port=0``: any free port)."""
    service = OpenpiService(policy, config, checkpoint_path)
    try:
        server = serve(service.handle, host.strip("[]") or None, port, process_request=_health,
                       compression=None, max_size=None)
    except OSError as err:
        service.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {err}") from err
    started = OpenpiServer(server, service)
    log.info("serving policy '%s' over openpi websocket on %s:%d (max batch %d, window %.1f ms)", policy.name,
             host, started.port, config.max_batch, config.batch_window_ms)
    return started
