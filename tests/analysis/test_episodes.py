"""Recorded episodes in the report: image strips (time order, right side up) and the videos themselves."""

import base64
import os
import re

import imageio.v3 as iio
import numpy as np
import pytest
from analysis_util import episode, write_results

from vlaforge.analysis import run_analysis
from vlaforge.sim.video import encode_video, image_strip

H, W, FRAMES = 16, 20, 12
PICKS = [0, 2, 3, 5, 6, 8, 9, 11]  # 8 of 12 frames, evenly spaced, first and last included


def _frames(n: int = FRAMES) -> list[np.ndarray]:
    """Frame i: a bright top band, a dark middle and a bottom half whose grey level encodes i."""
    frames = []
    for i in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[:2] = 255
        frame[H // 2:] = 10 + 20 * i
        frames.append(frame)
    return frames


def _check_strip(png: bytes, picks: list[int], height: int = 128) -> None:
    """The strip shows the frames ``picks`` left to right, each scaled to ``height`` and right side up."""
    strip = iio.imread(png)
    tile = round(W * height / H)
    assert strip.shape == (height, tile * len(picks), 3)
    tiles = [strip[:, k * tile:(k + 1) * tile].astype(float) for k in range(len(picks))]
    assert all(t[: height // 8].mean() > 200 and t[height // 4: height // 2].mean() < 50 for t in tiles)
    assert [round((t[height // 2:].mean() - 10) / 20) for t in tiles] == picks


@pytest.mark.parametrize("fmt", ["gif", "mp4"])
def test_image_strip_of_a_video(fmt):
    _check_strip(image_strip(encode_video(_frames(), fmt), fmt), PICKS)


def test_image_strip_of_a_short_video_shows_every_frame():
    _check_strip(image_strip(encode_video(_frames(3)), height=48), [0, 1, 2], height=48)


def _rollout(root, rel: str, statuses: list[str], videos: dict[int, str]) -> None:
    """A results.json of ReachV3 (snake_case skill_type) at ``root/rel`` and videos ``{index: format}`` beside it."""
    path = write_results(root, f"{rel}/results.json", [episode("reach_v3", i, s) for i, s in enumerate(statuses)],
                         budget=10)
    os.makedirs(os.path.join(os.path.dirname(path), "videos"))
    for index, fmt in videos.items():
        video = os.path.join(os.path.dirname(path), "videos", f"episode_{index:06d}.{fmt}")
        with open(video, "wb") as f:
            f.write(encode_video(_frames(), fmt))


def test_report_shows_recorded_episodes(tmp_path):
    _rollout(tmp_path / "r", "vlaforge_policy/ReachV3/rollouts/t0", ["success", "failure", "success"],
             {0: "gif", 1: "gif", 2: "gif"})
    _rollout(tmp_path / "r", "set1/expert/ReachV3/rollouts/t0", ["pending", "success"], {0: "mp4"})
    out = tmp_path / "out"
    run_analysis([str(tmp_path / "r")], str(out))
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.index("<h2>Per task</h2>") < html.index("<h2>Episodes</h2>") < html.index("<h2>Pairwise")
    figures = re.findall(r'<figure class="episode">(.*?)</figure>', html)
    captions = [re.search(r"<figcaption>(.*)</figcaption>", f).group(1) for f in figures]
    assert captions == ["expert · ReachV3 · episode 0 · pending",  # at most 2 per (model, task):
                        "vlaforge_policy · ReachV3 · episode 0 · success",
                        "vlaforge_policy · ReachV3 · episode 1 · failure"]
    media = [re.findall(r'src="data:([a-z/0-9]+);base64,([^"]+)"', f) for f in figures]
    assert [[kind for kind, _ in m] for m in media] == [["image/png", "video/mp4"], ["image/png", "image/gif"],
                                                        ["image/png", "image/gif"]]
    assert iio.imread(base64.b64decode(media[1][1][1]), extension=".gif").shape == (FRAMES, H, W, 3)
    strips = sorted(p.relative_to(out / "episodes").as_posix() for p in (out / "episodes").rglob("*.png"))
    assert strips == ["expert/ReachV3/episode_000000.png", "vlaforge_policy/ReachV3/episode_000000.png",
                      "vlaforge_policy/ReachV3/episode_000001.png"]
    for figure, name in zip(media, strips):
        png = (out / "episodes" / name).read_bytes()
        assert base64.b64decode(figure[0][1]) == png
        _check_strip(png, PICKS)


def test_report_without_videos_says_none_were_recorded(tmp_path):
    write_results(tmp_path / "r", "a/Reach/rollouts/t0/results.json", [episode("Reach", 0, "success")], budget=10)
    run_analysis([str(tmp_path / "r")], str(tmp_path / "out"))
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<h2>Episodes</h2>" in html and "No episode videos were recorded" in html
    assert not (tmp_path / "out" / "episodes").exists()
