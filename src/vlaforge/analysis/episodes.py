"""Recorded evaluation episodes: the videos sim_eval wrote next to the results, with image strips.

sim_eval records the first episodes of each task at
``<model>/<Task>/rollouts/<timestamp>/videos/episode_<index:06d>.<gif|mp4>``, beside the results.json
that holds their outcomes; each analysed episode is matched to a video in its own rollouts folder.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from vlaforge import storage
from vlaforge.analysis.results import Episode, ResultSet
from vlaforge.sim.video import FORMATS, image_strip

_VIDEO_NAME = re.compile(rf"episode_(\d+)\.({'|'.join(FORMATS)})")
SHOWN_PER_PAIR = 2  # episodes shown per (model, task): each embeds a video, so keep the report small


@dataclass(frozen=True)
class EpisodeVideo:
    task: str
    model: str
    index: int
    status: str
    fmt: str
    video: bytes
    strip: bytes  # PNG

    @property
    def caption(self) -> str:
        return f"{self.model} · {self.task} · episode {self.index} · {self.status}"

    @property
    def strip_path(self) -> str:
        """Where the strip goes in the output folder."""
        return f"episodes/{self.model}/{self.task}/episode_{self.index:06d}.png"


def _videos(rollouts_folder: str) -> dict[int, tuple[str, str]]:
    """``{scenario_index: (uri, format)}`` of the videos recorded in one rollouts folder."""
    fs, root = storage.filesystem(rollouts_folder)
    found = {}
    for path in fs.glob(f"{root.rstrip('/')}/videos/episode_*"):
        name = posixpath.basename(path)
        match = _VIDEO_NAME.fullmatch(name)
        if match:
            found[int(match[1])] = (storage.join(rollouts_folder, "videos", name), match[2])
    return found


def collect_episodes(results: ResultSet, per_pair: int = SHOWN_PER_PAIR) -> list[EpisodeVideo]:
    """Up to ``per_pair`` recorded episodes of every (task, model), lowest scenario index first, with
    their outcomes; sorted by task, then model."""
    folders: dict[str, dict[int, tuple[str, str]]] = {}

    def video_of(ep: Episode) -> tuple[str, str] | None:
        folder = posixpath.dirname(ep.source)
        if folder not in folders:
            folders[folder] = _videos(folder)
        return folders[folder].get(ep.scenario_index)

    out = []
    for (task, model), episodes in sorted(results.episodes.items()):
        recorded = [(ep, video) for ep in episodes if (video := video_of(ep))]
        for ep, (uri, fmt) in recorded[:per_pair]:
            data = storage.read_bytes(uri)
            out.append(EpisodeVideo(task, model, ep.scenario_index, ep.status, fmt, data, image_strip(data, fmt)))
    return out
