"""Fixtures of the policy-server tests.

``wire``: the LBM Eval protocol built straight from the field list in
``docs/reference/lbm-policy-protocol.md`` (its own descriptor pool, nothing from vlaforge's
``.proto``), and a client that calls the server the way the LBM Eval simulator does: a new
connection per call, raw method paths. ``ScriptedPolicy``: a policy whose actions say which client
and which chunk position they came from.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "reference" / "lbm-policy-protocol.md"
PACKAGE = "lbm_policy_interface"
FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {"int32": FDP.TYPE_INT32, "uint32": FDP.TYPE_UINT32, "float": FDP.TYPE_FLOAT,
           "double": FDP.TYPE_DOUBLE, "bool": FDP.TYPE_BOOL, "string": FDP.TYPE_STRING, "bytes": FDP.TYPE_BYTES}
BLOCK = re.compile(r"`(enum\s+)?(\w+)\s*\{([^}]*)\}`")
FIELD = re.compile(r"^(repeated\s+)?(map<\s*(\w+)\s*,\s*(\w+)\s*>|\w+)\s+(\w+)\s*\[(\d+)\]")
ENUM_VALUE = re.compile(r"^(\w+)\s*=\s*(\d+)$")
RPC = re.compile(r"`(\w+)\.(\w+)\((\w+)\) -> (\w+)`")
MAX_MESSAGE = 30 * 1024 * 1024
ARMS = ("right::panda", "left::panda")
GRIPPERS = ("right::panda_hand", "left::panda_hand")


def parse_protocol(text: str):
    """(messages {name: [(label, type, key, value, field, number)]}, enums {name: {value: n}}, rpcs)."""
    messages, enums = {}, {}
    for is_enum, name, body in BLOCK.findall(text):
        items = [item.strip() for item in body.split(";") if item.strip()]
        if is_enum:
            enums[name] = {m.group(1): int(m.group(2)) for m in map(ENUM_VALUE.match, items)}
            continue
        fields = []
        for item in items:
            m = FIELD.match(item)
            assert m, f"cannot parse field '{item}' of {name}"
            repeated, tp, key, value, field, number = m.groups()
            kind = "map" if key else ("repeated" if repeated else "single")
            fields.append((kind, tp if not key else None, key, value, field, int(number)))
        messages[name] = fields
    rpcs = RPC.findall(text)
    return messages, enums, rpcs


def _set_type(field, tp: str, enums: dict) -> None:
    if tp in SCALARS:
        field.type = SCALARS[tp]
    else:
        field.type = FDP.TYPE_ENUM if tp in enums else FDP.TYPE_MESSAGE
        field.type_name = f".{PACKAGE}.{tp}"


def build_pool(messages: dict, enums: dict) -> descriptor_pool.DescriptorPool:
    fd = descriptor_pb2.FileDescriptorProto(name="lbm_wire_from_field_list.proto", package=PACKAGE, syntax="proto3")
    for name, values in enums.items():
        enum = fd.enum_type.add(name=name)
        for value, number in values.items():
            enum.value.add(name=value, number=number)
    for name, fields in messages.items():
        msg = fd.message_type.add(name=name)
        for kind, tp, key, value, field_name, number in fields:
            field = msg.field.add(name=field_name, number=number)
            field.label = FDP.LABEL_REPEATED if kind != "single" else FDP.LABEL_OPTIONAL
            if kind == "map":
                entry_name = "".join(p.capitalize() for p in field_name.split("_")) + "Entry"
                entry = msg.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                for n, (entry_field, entry_tp) in enumerate([("key", key), ("value", value)], 1):
                    sub = entry.field.add(name=entry_field, number=n, label=FDP.LABEL_OPTIONAL)
                    _set_type(sub, entry_tp, enums)
                field.type, field.type_name = FDP.TYPE_MESSAGE, f".{PACKAGE}.{name}.{entry_name}"
            else:
                _set_type(field, tp, enums)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return pool


class WireClient:
    """Calls a policy server the way the LBM Eval simulator does (new channel per call, raw paths)."""

    def __init__(self, target: str, wire):
        self.target, self.wire = target, wire

    def _call(self, service: str, method: str, request, reply_type, timeout: float = 30.0):
        with grpc.insecure_channel(self.target, options=[("grpc.max_send_message_length", MAX_MESSAGE),
                                                         ("grpc.max_receive_message_length", MAX_MESSAGE)]) as ch:
            call = ch.unary_unary(f"/{PACKAGE}.{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=reply_type.FromString)
            return call(request, timeout=timeout)

    def health(self) -> int:
        with grpc.insecure_channel(self.target) as ch:
            return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status

    def reset(self, client_id: str, seed: int = 0):
        m = self.wire.m
        return self._call("PolicyResetService", "PolicyReset",
                          m.PolicyResetRequest(client_identifier=client_id, seed=seed), m.PolicyResetResponse)

    def step(self, client_id: str, observation):
        m = self.wire.m
        return self._call("PolicyStepService", "PolicyStep",
                          m.PolicyStepRequest(client_identifier=client_id, observation=observation),
                          m.PolicyStepResponse)

    def metadata(self, client_id: str = "meta"):
        m = self.wire.m
        return self._call("GetPolicyMetadataService", "GetPolicyMetadata",
                          m.GetPolicyMetadataRequest(client_identifier=client_id), m.GetPolicyMetadataResponse)


def make_observation(wire, cameras: dict[str, np.ndarray], xyz=(0.0, 0.6, 0.2), gripper=0.08,
                     instruction: str = "", left_xyz=(0.0, -0.6, 0.2)):
    """A MultiarmObservation as the simulator sends it: both arms, uncompressed RGB cameras."""
    m = wire.m
    rot = np.eye(3).ravel().tolist()
    poses = [m.RobotPoseStatus(robot_name=ARMS[0], pose=m.RigidTransform(translation=list(xyz), rotation=rot)),
             m.RobotPoseStatus(robot_name=ARMS[1], pose=m.RigidTransform(translation=list(left_xyz), rotation=rot))]
    grippers = [m.RobotGripperStatus(gripper_name=GRIPPERS[0], gripper_position=gripper),
                m.RobotGripperStatus(gripper_name=GRIPPERS[1], gripper_position=0.05)]
    visuo = [m.CameraImageSet(camera_serial=serial, has_rgb=True, camera_rgb=m.CameraImage(image=m.Image(
        height=img.shape[0], width=img.shape[1], channels=img.shape[2], data=img.tobytes())))
        for serial, img in cameras.items()]
    return m.MultiarmObservation(
        robot=m.PosesAndGrippersActualAndDesired(actual=m.PosesAndGrippers(pose_status=poses, gripper_status=grippers),
                                                 version=20241212),
        visuo=visuo, use_language_instruction=bool(instruction), language_instruction=instruction)


@pytest.fixture(scope="session")
def wire():
    messages, enums, rpcs = parse_protocol(PROTOCOL_MD.read_text())
    pool = build_pool(messages, enums)
    classes = {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
               for name in messages}
    wire = SimpleNamespace(messages=messages, enums=enums, rpcs=rpcs, pool=pool, m=SimpleNamespace(**classes))
    wire.observation = lambda cameras, **kw: make_observation(wire, cameras, **kw)
    wire.client = lambda target: WireClient(target, wire)
    return wire


class ScriptedPolicy:
    """Actions that tell where they came from, per chunk row ``j``: ``(dx, 0, j / 10, g)``.

    ``dx`` is -0.5 when the newest observation's instruction contains "left", else +0.5; ``g`` is
    +1 (close) when it contains "close", else -1. An instruction containing "fail" raises. Each
    ``predict`` call is recorded (batch size, seed, histories); ``delay_s`` simulates a forward pass.
    """

    name = "scripted"
    action_dim = 4

    def __init__(self, n_obs_steps=2, execute_steps=3, chunk_len=5, cameras=("front",), image_size=16, delay_s=0.0):
        self.n_obs_steps, self.execute_steps, self.chunk_len = n_obs_steps, execute_steps, chunk_len
        self.cameras, self.image_size, self.delay_s = list(cameras), image_size, delay_s
        self.config = {"chunk_len": chunk_len, "note": np.float32(1.5)}
        self.calls: list[tuple[int, int | None, list]] = []
        self._lock = threading.Lock()

    def predict(self, histories, seed=None):
        with self._lock:
            self.calls.append((len(histories), seed, histories))
        time.sleep(self.delay_s)
        chunks = []
        for history in histories:
            obs = history[-1]
            assert set(obs.images) == set(self.cameras)
            assert all(img.shape == (self.image_size, self.image_size, 3) for img in obs.images.values())
            if "fail" in obs.instruction:
                raise RuntimeError("scripted failure")
            dx = -0.5 if "left" in obs.instruction else 0.5
            grip = 1.0 if "close" in obs.instruction else -1.0
            chunks.append(np.array([[dx, 0.0, j / 10, grip] for j in range(self.chunk_len)], dtype=np.float32))
        return chunks


@pytest.fixture
def frame():
    return np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)


@pytest.fixture
def scripted():
    """The :class:`ScriptedPolicy` class (construct with the settings a test needs)."""
    return ScriptedPolicy


@pytest.fixture
def serve_command():
    """Start ``vlaforge serve ARGS...`` as a process (this checkout's code, unbuffered output); every
    process started is killed at the end of the test."""
    import os
    import subprocess
    import sys

    import vlaforge

    src = str(Path(vlaforge.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "PYTHONUNBUFFERED": "1"}
    procs = []

    def start(*args):
        procs.append(subprocess.Popen([sys.executable, "-m", "vlaforge.cli", "serve", *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.communicate()
