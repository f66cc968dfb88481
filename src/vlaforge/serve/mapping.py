"""Mapping between LBM Eval protocol messages and vlaforge policy inputs/outputs.

Server side (protocol -> policy -> protocol):

- :func:`observation_from_proto`: a ``MultiarmObservation`` becomes an :class:`~vlaforge.policy.Observation`.
  Cameras are renamed by ``camera_map`` (protocol ``camera_serial`` -> policy camera name; empty: the
  serial is the name) and decoded (uncompressed, JPG or PNG; ``height*width*channels`` checked against
  the data length) to ``HxWx3`` uint8, resized to the policy's square ``image_size`` when ``resize``.
  ``proprio`` is the controlled arm's (``arm``) translation xyz plus its gripper's (``gripper``)
  opening fraction ``gripper_position / gripper_open`` (1 = fully open, as Meta-World reports it).
  The instruction is ``language_instruction`` when ``use_language_instruction`` is set.
- :func:`action_to_proto`: a Meta-World action ``(dx, dy, dz, g)`` becomes a ``PosesAndGrippers``:
  the arm's target translation is its current one plus ``clip(d, -1, 1) * action_scale`` metres, its
  rotation stays the current one (projected onto a proper rotation); the gripper width is
  ``gripper_open`` at ``g = -1`` (open) and ``gripper_closed`` at ``g = +1`` (closed), linear between.
  Every other arm and gripper in the observation holds its current pose/width, so the reply names
  ``right::panda`` and ``left::panda`` whenever the simulator reports both.

Client side (the embedded simulator talking to a server): :func:`observation_to_proto` and
:func:`action_from_proto` are the exact inverses, so a round trip returns the policy's action.

Bad input raises :class:`MappingError`, whose message starts with the offending field's path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from vlaforge.config import ConfigError
from vlaforge.policy.interface import Observation
from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb

MAX_MESSAGE_BYTES = 30 * 1024 * 1024
GRPC_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),  # server and client channels alike
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
OBSERVATION = "observation"
ACTUAL = f"{OBSERVATION}.robot.actual"


class MappingError(ValueError):
    """A protocol message does not fit the policy; the message names the field."""


@dataclass
class MappingConfig:
    """How the protocol's robot, cameras and actions map to a policy's inputs and outputs."""

    camera_map: dict[str, str] = field(default_factory=dict)  # camera_serial -> policy camera name
    arm: str = "right::panda"
    gripper: str = "right::panda_hand"
    resize: bool = True  # resize frames to the policy's image_size (else a wrong size is an error)
    action_scale: float = 0.01  # metres of end-effector motion per unit of xyz action (Meta-World)
    gripper_open: float = 0.08  # gripper width (m) of a fully open gripper (action -1)
    gripper_closed: float = 0.0  # gripper width (m) of a closed gripper (action +1)

    def __post_init__(self):
        if self.action_scale <= 0:
            raise ConfigError(f"mapping.action_scale must be positive, got {self.action_scale}")
        if self.gripper_open <= self.gripper_closed:
            raise ConfigError(f"mapping.gripper_open ({self.gripper_open}) must exceed mapping.gripper_closed "
                               f"({self.gripper_closed})")


# --- images ------------------------------------------------------------------------------------

def _enum_name(enum, value: int) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        return str(value)


def decode_image(image: pb.Image, name: str, size: int | None = None, resize: bool = True) -> np.ndarray:
    """An ``HxWx3`` uint8 RGB frame from a protocol ``Image`` (field path ``name``).

    ``size``: the square side the policy expects (None: any); other sizes are resized or rejected.
    """
    if image.dtype != pb.DTYPE_UINT8:
        raise MappingError(f"{name}.dtype: only DTYPE_UINT8 images are supported, got "
                           f"{_enum_name(pb.ImageDtype, image.dtype)}")
    if image.compression not in (pb.NONE, pb.JPG, pb.PNG):
        raise MappingError(f"{name}.compression: unknown value {image.compression}")
    h, w, c = image.height, image.width, image.channels
    if h <= 0 or w <= 0:
        raise MappingError(f"{name}: height and width must be positive, got {h}x{w}")
    if image.compression == pb.NONE:
        if c not in (1, 3, 4):
            raise MappingError(f"{name}.channels: expected 1, 3 or 4, got {c}")
        if len(image.data) != h * w * c:
            raise MappingError(f"{name}.data: {len(image.data)} bytes, but height*width*channels = "
                               f"{h}*{w}*{c} = {h * w * c}")
        frame = np.frombuffer(image.data, dtype=np.uint8).reshape(h, w, c).copy()
        if c != 3:
            frame = np.asarray(Image.fromarray(frame.squeeze(-1) if c == 1 else frame).convert("RGB"))
    else:
        try:
            pil = Image.open(io.BytesIO(image.data))
            pil.load()
        except (UnidentifiedImageError, OSError) as err:
            raise MappingError(f"{name}.data: cannot decode {pb.ImageCompression.Name(image.compression)} "
                               f"image: {err}") from err
        if pil.size != (w, h):
            raise MappingError(f"{name}: declared {h}x{w} but the encoded image is {pil.size[1]}x{pil.size[0]}")
        frame = np.asarray(pil.convert("RGB"))
    if size and (h, w) != (size, size):
        if not resize:
            raise MappingError(f"{name}: image is {h}x{w}, the policy expects {size}x{size}")
        frame = np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR, reducing_gap=3.0))
    return frame


def encode_image(frame: np.ndarray) -> pb.Image:
    """An uncompressed protocol ``Image`` from an ``HxWx3`` uint8 frame."""
    frame = np.ascontiguousarray(frame, dtype=np.uint8)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise MappingError(f"image: expected an HxWx3 frame, got shape {frame.shape}")
    h, w, c = frame.shape
    return pb.Image(height=h, width=w, channels=c, data=frame.tobytes(), dtype=pb.DTYPE_UINT8,
                    compression=pb.NONE)


# --- poses -------------------------------------------------------------------------------------

def _find(entries, key: str, wanted: str, name: str):
    for entry in entries:
        if getattr(entry, key) == wanted:
            return entry
    have = [getattr(e, key) for e in entries]
    raise MappingError(f"{name}: no entry with {key} '{wanted}' (have: {have})")


def _translation(pose: pb.RigidTransform, name: str) -> np.ndarray:
    xyz = np.asarray(pose.translation, dtype=np.float64)
    if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
        raise MappingError(f"{name}.translation: expected 3 finite values, got {list(pose.translation)}")
    return xyz


def proper_rotation(values, name: str) -> np.ndarray:
    """The 3x3 proper rotation nearest to 9 row-major values (identity when none are given)."""
    if len(values) == 0:
        return np.eye(3)
    rot = np.asarray(values, dtype=np.float64)
    if rot.shape != (9,) or not np.all(np.isfinite(rot)):
        raise MappingError(f"{name}.rotation: expected 9 finite row-major values, got {len(rot)}")
    u, _, vt = np.linalg.svd(rot.reshape(3, 3))
    if np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
    return u @ vt


def _arm_state(msg: pb.PosesAndGrippers, config: MappingConfig, name: str) -> tuple[np.ndarray, float]:
    """The controlled arm's translation and gripper width in ``msg`` (field path ``name``)."""
    arm = _find(msg.pose_status, "robot_name", config.arm, f"{name}.pose_status")
    xyz = _translation(arm.pose, f"{name}.pose_status['{config.arm}'].pose")
    grip = _find(msg.gripper_status, "gripper_name", config.gripper, f"{name}.gripper_status")
    if not np.isfinite(grip.gripper_position):
        raise MappingError(f"{name}.gripper_status['{config.gripper}'].gripper_position: "
                           f"not finite ({grip.gripper_position})")
    return xyz, grip.gripper_position


# --- observation -------------------------------------------------------------------------------

def observation_from_proto(msg: pb.MultiarmObservation, config: MappingConfig,
                           cameras: list[str] | None = None, image_size: int | None = None) -> Observation:
    """The policy's view of one protocol observation.

    ``cameras``: the policy camera names that must be present (None: whatever arrives);
    ``image_size``: the square frame side the policy expects (None: any).
    """
    images: dict[str, np.ndarray] = {}
    serials = [s.camera_serial for s in msg.visuo]
    for i, cam in enumerate(msg.visuo):
        field_name = f"{OBSERVATION}.visuo[{i}]"
        if serials.count(cam.camera_serial) > 1:
            raise MappingError(f"{field_name}.camera_serial: '{cam.camera_serial}' appears more than once")
        name = config.camera_map.get(cam.camera_serial) if config.camera_map else cam.camera_serial
        if name is None or (cameras is not None and name not in cameras):
            continue  # a camera the policy does not use
        if not cam.has_rgb:
            raise MappingError(f"{field_name}.has_rgb: camera '{cam.camera_serial}' has no RGB image")
        images[name] = decode_image(cam.camera_rgb.image, f"{field_name}.camera_rgb.image", image_size,
                                    config.resize)
    missing = [c for c in cameras or [] if c not in images]
    if missing:
        wanted = {v: k for k, v in config.camera_map.items()}
        need = [f"'{wanted.get(c, c)}' (policy camera '{c}')" for c in missing]
        raise MappingError(f"{OBSERVATION}.visuo: missing camera {', '.join(need)}; got {serials}")
    for i, status in enumerate(msg.robot.actual.pose_status):  # every arm's pose is echoed in the action
        _translation(status.pose, f"{ACTUAL}.pose_status[{i}].pose")
        proper_rotation(status.pose.rotation, f"{ACTUAL}.pose_status[{i}].pose")
    xyz, gripper = _arm_state(msg.robot.actual, config, ACTUAL)
    proprio = np.array([*xyz, gripper / config.gripper_open], dtype=np.float32)
    instruction = msg.language_instruction if msg.use_language_instruction else ""
    return Observation(images=images, proprio=proprio, instruction=instruction)


def observation_to_proto(obs: Observation, config: MappingConfig, version: float = 20241212) -> pb.MultiarmObservation:
    """The protocol message a simulator would send for ``obs`` (inverse of :func:`observation_from_proto`)."""
    proprio = np.asarray(obs.proprio, dtype=np.float64)
    if proprio.shape != (4,):
        raise MappingError(f"proprio: expected shape (4,), got {proprio.shape}")
    serial = {v: k for k, v in config.camera_map.items()}
    visuo = [pb.CameraImageSet(camera_serial=serial.get(name, name), has_rgb=True,
                               camera_rgb=pb.CameraImage(image=encode_image(frame)))
             for name, frame in obs.images.items()]
    pose = pb.RobotPoseStatus(robot_name=config.arm, pose=pb.RigidTransform(
        translation=proprio[:3].tolist(), rotation=np.eye(3).ravel().tolist()))
    grip = pb.RobotGripperStatus(gripper_name=config.gripper, gripper_position=proprio[3] * config.gripper_open)
    robot = pb.PosesAndGrippersActualAndDesired(
        actual=pb.PosesAndGrippers(pose_status=[pose], gripper_status=[grip]), version=version)
    return pb.MultiarmObservation(robot=robot, visuo=visuo, use_language_instruction=bool(obs.instruction),
                                  language_instruction=obs.instruction)


# --- action ------------------------------------------------------------------------------------

def action_to_proto(action: np.ndarray, actual: pb.PosesAndGrippers, config: MappingConfig) -> pb.PosesAndGrippers:
    """Target poses and gripper widths for a Meta-World action, given the current robot state."""
    action = np.asarray(action, dtype=np.float64)
    if action.shape != (4,) or not np.all(np.isfinite(action)):
        raise MappingError(f"action: expected 4 finite values (dx, dy, dz, gripper), got {action.tolist()}")
    clipped = np.clip(action, -1.0, 1.0)
    out = pb.PosesAndGrippers()
    for i, status in enumerate(actual.pose_status):
        name = f"{ACTUAL}.pose_status[{i}].pose"
        xyz = _translation(status.pose, name)
        if status.robot_name == config.arm:
            xyz = xyz + clipped[:3] * config.action_scale
        rotation = proper_rotation(status.pose.rotation, name)
        out.pose_status.add(robot_name=status.robot_name, pose=pb.RigidTransform(
            translation=xyz.tolist(), rotation=rotation.ravel().tolist()))
    for status in actual.gripper_status:
        width = status.gripper_position
        if status.gripper_name == config.gripper:
            closed = (clipped[3] + 1.0) / 2.0
            width = config.gripper_open + closed * (config.gripper_closed - config.gripper_open)
        out.gripper_status.add(gripper_name=status.gripper_name, gripper_position=width)
    return out


def action_from_proto(msg: pb.PosesAndGrippers, proprio: np.ndarray, config: MappingConfig) -> np.ndarray:
    """The Meta-World action behind ``msg`` for a robot at ``proprio`` (inverse of :func:`action_to_proto`)."""
    target, width = _arm_state(msg, config, "action")
    delta = (target - np.asarray(proprio[:3], dtype=np.float64)) / config.action_scale
    closed = (width - config.gripper_open) / (config.gripper_closed - config.gripper_open)
    return np.array([*delta, 2.0 * closed - 1.0], dtype=np.float32)
