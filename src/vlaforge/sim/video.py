"""Episode videos (GIF or MP4, frames right side up), image strips of them, and an HTML page that shows them."""

from __future__ import annotations

import base64
import html
import io

import imageio.v3 as iio
import numpy as np

from vlaforge import storage

FORMATS = ("gif", "mp4")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown video format '{fmt}'; known: {', '.join(FORMATS)}")


def encode_video(frames: list[np.ndarray], fmt: str = "gif", fps: int = 20) -> bytes:
    """Encode ``frames`` (HxWx3 uint8, right side up) as GIF or MP4 bytes."""
    _check_format(fmt)
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


def decode_video(data: bytes, fmt: str) -> np.ndarray:
    """The frames (NxHxWx3 uint8, as stored: right side up) of GIF or MP4 bytes."""
    _check_format(fmt)
    frames = (iio.imread(data, extension=".gif", index=None) if fmt == "gif"
              else iio.imread(data, extension=".mp4", plugin="pyav"))
    return np.asarray(frames)[..., :3]


def image_strip(data: bytes, fmt: str = "gif", frames: int = 8, height: int = 128) -> bytes:
    """PNG bytes: ``frames`` evenly spaced frames of a video (first and last included; all of a shorter
    one) side by side in time order, resized with nearest neighbour to ``height`` pixels; not flipped."""
    stack = decode_video(data, fmt)
    picks = np.linspace(0, len(stack) - 1, min(frames, len(stack))).round().astype(int)
    _, h, w, _ = stack.shape
    width = max(1, round(w * height / h))
    rows, cols = np.arange(height) * h // height, np.arange(width) * w // width
    strip = np.concatenate([stack[i][rows][:, cols] for i in picks], axis=1)
    return iio.imwrite("<bytes>", strip, extension=".png")


def media_html(fmt: str, data: bytes, width: int = 256) -> str:
    """An ``<img>`` (GIF) or ``<video>`` (MP4) element holding ``data`` as a data URI."""
    src = f"data:{'image/gif' if fmt == 'gif' else 'video/mp4'};base64,{base64.b64encode(data).decode()}"
    return (f'<img src="{src}" width="{width}">' if fmt == "gif"
            else f'<video src="{src}" width="{width}" controls loop autoplay muted></video>')


def html_gallery(title: str, videos: list[tuple[str, str, bytes]]) -> str:
    """A self-contained page of ``(caption, format, data)`` videos embedded as data URIs."""
    items = [f"<figure>{media_html(fmt, data)}<figcaption>{html.escape(caption)}</figcaption></figure>"
             for caption, fmt, data in videos]
    body = "\n".join(items) or "<p>No videos were recorded (videos_per_task is 0).</p>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif} figure{display:inline-block;margin:8px}"
            "img,video{image-rendering:pixelated}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")
