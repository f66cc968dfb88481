"""Protocol observation -> policy Observation, policy action -> PosesAndGrippers, and back."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vlaforge.config import ConfigError
from vlaforge.policy import Observation
from vlaforge.serve.mapping import (MappingConfig, MappingError, action_from_proto, action_to_proto,
                                    decode_image, observation_from_proto, observation_to_proto, proper_rotation)
from vlaforge.serve.protos import lbm_policy_interface_pb2 as pb

CFG = MappingConfig()


def _observation(cameras: dict, xyz=(0.1, 0.6, 0.2), gripper=0.04) -> pb.MultiarmObservation:
    rot = np.eye(3).ravel().tolist()
    actual = pb.PosesAndGrippers(
        pose_status=[pb.RobotPoseStatus(robot_name="right::panda", pose=pb.RigidTransform(translation=xyz, rotation=rot)),
                     pb.RobotPoseStatus(robot_name="left::panda", pose=pb.RigidTransform(translation=[0, -0.6, 0.3],
                                                                                          rotation=rot))],
        gripper_status=[pb.RobotGripperStatus(gripper_name="right::panda_hand", gripper_position=gripper),
                        pb.RobotGripperStatus(gripper_name="left::panda_hand", gripper_position=0.02)])
    visuo = [pb.CameraImageSet(camera_serial=k, has_rgb=True, camera_rgb=pb.CameraImage(image=v))
             for k, v in cameras.items()]
    return pb.MultiarmObservation(robot=pb.PosesAndGrippersActualAndDesired(actual=actual, version=20241212),
                                  visuo=visuo, use_language_instruction=True, language_instruction="open the drawer")


def _raw(frame: np.ndarray, **over) -> pb.Image:
    fields = dict(height=frame.shape[0], width=frame.shape[1], channels=frame.shape[2], data=frame.tobytes())
    return pb.Image(**{**fields, **over})


def _encoded(frame: np.ndarray, fmt: str) -> pb.Image:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format=fmt)
    return pb.Image(height=frame.shape[0], width=frame.shape[1], channels=3, data=buf.getvalue(),
                    compression=pb.PNG if fmt == "PNG" else pb.JPG)


def test_uncompressed_and_png_decode_exactly(frame):
    np.testing.assert_array_equal(decode_image(_raw(frame), "img"), frame)
    np.testing.assert_array_equal(decode_image(_encoded(frame, "PNG"), "img"), frame)


def test_jpg_decodes_close(frame):
    smooth = np.repeat(np.repeat(frame[:4, :4], 4, 0), 4, 1)
    out = decode_image(_encoded(smooth, "JPEG"), "img")
    assert out.shape == smooth.shape and np.abs(out.astype(int) - smooth).mean() < 20


def test_gray_and_rgba_become_rgb(frame):
    gray = frame[..., :1]
    assert decode_image(_raw(gray), "img").shape == (16, 16, 3)
    rgba = np.concatenate([frame, np.full_like(frame[..., :1], 255)], axis=-1)
    np.testing.assert_array_equal(decode_image(_raw(rgba), "img"), frame)


def test_resize_to_policy_size(frame):
    assert decode_image(_raw(frame), "img", size=8).shape == (8, 8, 3)
    with pytest.raises(MappingError, match=r"^img: image is 16x16, the policy expects 8x8"):
        decode_image(_raw(frame), "img", size=8, resize=False)


@pytest.mark.parametrize("over, field", [
    ({"height": 15}, r"img\.data: 768 bytes, but height\*width\*channels = 15\*16\*3 = 720"),
    ({"channels": 2}, r"img\.channels"),
    ({"dtype": pb.DTYPE_UINT16}, r"img\.dtype: .*DTYPE_UINT16"),
    ({"dtype": 9}, r"img\.dtype: .*got 9"),
    ({"compression": 5}, r"img\.compression: unknown value 5"),
    ({"width": 0}, r"img: height and width must be positive"),
    ({"compression": pb.PNG}, r"img\.data: cannot decode PNG"),
])
def test_bad_images_name_the_field(frame, over, field):
    with pytest.raises(MappingError, match=field):
        decode_image(_raw(frame, **over), "img")


def test_encoded_size_must_match_declared(frame):
    image = _encoded(frame, "PNG")
    image.height = 20
    with pytest.raises(MappingError, match="declared 20x16 but the encoded image is 16x16"):
        decode_image(image, "img")


def test_observation_maps_cameras_proprio_instruction(frame):
    msg = _observation({"scene_right_0": _raw(frame), "wrist_right_plus": _raw(frame[::-1].copy())})
    cfg = MappingConfig(camera_map={"scene_right_0": "front", "wrist_right_plus": "wrist"})
    obs = observation_from_proto(msg, cfg, cameras=["front"], image_size=16)
    assert list(obs.images) == ["front"]  # unused cameras are not decoded
    np.testing.assert_array_equal(obs.images["front"], frame)
    np.testing.assert_allclose(obs.proprio, [0.1, 0.6, 0.2, 0.5])
    assert obs.instruction == "open the drawer" and obs.proprio.dtype == np.float32
    msg.use_language_instruction = False
    assert observation_from_proto(msg, cfg).instruction == ""


@pytest.mark.parametrize("mutate, field", [
    (lambda m: m.visuo.pop(), r"observation\.visuo: missing camera 'scene_right_0' \(policy camera 'front'\)"),
    (lambda m: setattr(m.visuo[0], "has_rgb", False), r"observation\.visuo\[0\]\.has_rgb"),
    (lambda m: m.visuo.append(m.visuo[0]), r"observation\.visuo\[0\]\.camera_serial: 'scene_right_0' appears"),
    (lambda m: m.robot.actual.pose_status.pop(0), r"observation\.robot\.actual\.pose_status: no entry with "
                                                  r"robot_name 'right::panda'"),
    (lambda m: m.robot.actual.gripper_status.pop(0), r"observation\.robot\.actual\.gripper_status: no entry"),
    (lambda m: m.robot.actual.pose_status[1].pose.translation.pop(),
     r"observation\.robot\.actual\.pose_status\[1\]\.pose\.translation: expected 3"),
    (lambda m: m.robot.actual.pose_status[0].pose.rotation.pop(),
     r"observation\.robot\.actual\.pose_status\[0\]\.pose\.rotation: expected 9"),
    (lambda m: setattr(m.robot.actual.gripper_status[0], "gripper_position", float("nan")),
     r"gripper_status\['right::panda_hand'\]\.gripper_position: not finite"),
])
def test_bad_observations_name_the_field(frame, mutate, field):
    msg = _observation({"scene_right_0": _raw(frame)})
    mutate(msg)
    with pytest.raises(MappingError, match=field):
        observation_from_proto(msg, MappingConfig(camera_map={"scene_right_0": "front"}), cameras=["front"])


def _rotation(msg: pb.PosesAndGrippers, i: int) -> np.ndarray:
    return np.asarray(msg.pose_status[i].pose.rotation).reshape(3, 3)


def test_action_moves_the_arm_and_sets_the_gripper(frame):
    msg = _observation({})
    out = action_to_proto(np.array([1.0, -0.5, 3.0, 1.0]), msg.robot.actual, CFG)
    assert [p.robot_name for p in out.pose_status] == ["right::panda", "left::panda"]
    assert [g.gripper_name for g in out.gripper_status] == ["right::panda_hand", "left::panda_hand"]
    # xyz deltas are clipped to [-1, 1] and scaled; the other arm and gripper hold still
    np.testing.assert_allclose(out.pose_status[0].pose.translation, [0.11, 0.595, 0.21])
    np.testing.assert_allclose(out.pose_status[1].pose.translation, [0, -0.6, 0.3])
    assert out.gripper_status[0].gripper_position == pytest.approx(0.0)  # +1: closed
    assert out.gripper_status[1].gripper_position == pytest.approx(0.02)
    for i in range(2):
        rot = _rotation(out, i)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
    open_ = action_to_proto(np.array([0, 0, 0, -1.0]), msg.robot.actual, CFG)
    assert open_.gripper_status[0].gripper_position == pytest.approx(CFG.gripper_open)


def test_action_must_be_four_finite_numbers():
    actual = _observation({}).robot.actual
    for bad in (np.zeros(3), np.array([0, 0, np.nan, 0])):
        with pytest.raises(MappingError, match=r"^action: expected 4 finite values"):
            action_to_proto(bad, actual, CFG)


def test_rotation_is_projected_to_a_proper_one():
    reflected = np.diag([1.0, 1.0, -1.0]) * 1.01
    rot = proper_rotation(reflected.ravel(), "pose")
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    np.testing.assert_array_equal(proper_rotation([], "pose"), np.eye(3))


def test_client_side_round_trip(frame):
    cfg = MappingConfig(camera_map={"scene_right_0": "front"}, action_scale=0.02)
    obs = Observation(images={"front": frame}, proprio=np.array([0.1, 0.5, 0.2, 0.75], np.float32),
                      instruction="push the puck")
    back = observation_from_proto(observation_to_proto(obs, cfg), cfg, cameras=["front"], image_size=16)
    np.testing.assert_array_equal(back.images["front"], frame)
    np.testing.assert_allclose(back.proprio, obs.proprio)
    assert back.instruction == obs.instruction
    msg = observation_to_proto(obs, cfg)
    action = np.array([0.3, -0.7, 1.0, 0.25], np.float32)
    recovered = action_from_proto(action_to_proto(action, msg.robot.actual, cfg), obs.proprio, cfg)
    np.testing.assert_allclose(recovered, action, atol=1e-5)


def test_config_is_checked():
    with pytest.raises(ConfigError, match="action_scale"):
        MappingConfig(action_scale=0)
    with pytest.raises(ConfigError, match="gripper_open"):
        MappingConfig(gripper_open=0.0, gripper_closed=0.01)
