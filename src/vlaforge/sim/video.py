"""Episode videos (GIF or MP4, frames right side up) and an HTML page that shows them."""

from __future__ import annotations

import base64
import html
import io

import imageio.v3 as iio
import numpy as np

from vlaforge import storage

FORMATS = ("gif", "mp4")


def encode_video(frames: list[np.ndarray], fmt: str = "gif", fps: int = 20) -> bytes:
    """Encode ``frames`` (HxWx3 uint8, right side up) as GIF or MP4 bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown video format '{fmt}'; known: {', '.join(FORMATS)}")
    if not frames:
        raise ValueError("a video needs at least one frame")
    stack = np.stack(frames).astype(np.uint8)
    if fmt == "gif":
        return iio.imwrite("<bytes>", stack, extension=".gif", duration=1000 / fps, loop=0)
    buf = io.BytesIO()
    iio.imwrite(buf, _even(stack), extension=".mp4", plugin="pyav", codec="libx264", fps=fps)
    return buf.getvalue()


def _even(stack: np.ndarray) -> np.ndarray:
    """H.264 needs even frame sizes: pad the last row/column by repetition."""
    _, h, w, _ = stack.shape
    return np.pad(stack, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_video(uri: str, frames: list[np.ndarray], fmt: str = "gif", fps: int = 20) -> None:
    storage.write_bytes(uri, encode_video(frames, fmt, fps))


def html_gallery(title: str, videos: list[tuple[str, str, bytes]]) -> str:
    """A self-contained page of ``(caption, format, data)`` videos embedded as data URIs."""
    items = []
    for caption, fmt, data in videos:
        src = f"data:{'image/gif' if fmt == 'gif' else 'video/mp4'};base64,{base64.b64encode(data).decode()}"
        media = (f'<img src="{src}" width="256">' if fmt == "gif"
                 else f'<video src="{src}" width="256" controls loop autoplay muted></video>')
        items.append(f"<figure>{media}<figcaption>{html.escape(caption)}</figcaption></figure>")
    body = "\n".join(items) or "<p>No videos were recorded (videos_per_task is 0).</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif} figure{display:inline-block;margin:8px}"
            "img,video{image-rendering:pixelated}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
