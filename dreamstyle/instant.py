"""A clip through a style network (:mod:`dreamstyle.fastnet`): an animation (GIF, WebP, APNG) or a
video file, frame by frame, into an animation, a folder of frames or a video (by the output's
suffix; a video keeps the source video's sound). One forward pass a frame: no optimization, so no
runner and no stop policy beyond Ctrl-C, which keeps the frames done, written whole."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .clips import is_animation, read_clip
from .errors import ImageError, OutputError
from .fastnet import Model, stylize
from .images import fit_size, to_pil, to_tensor
from .video import VideoSink, VideoSource, check_crf, is_video
from .writers import check_clip_output, check_output, signals_deferred, write_clip


@dataclass
class Styled:
    """What :func:`stylize_clip` made: where, how many frames of how many, whether Ctrl-C stopped it,
    and the milliseconds a frame took (the network's pass and the frame's conversions)."""

    path: Path | None
    frames: int
    total: int
    interrupted: bool
    ms_per_frame: float


def is_clip(path) -> bool:
    """A video file or an animation (more than one frame): what :func:`stylize_clip` takes."""
    path = Path(path)
    return path.is_file() and (is_video(path) or is_animation(path))


def _check_output(output: Path, overwrite: bool, crf: int | None, names: list[str]) -> None:
    """A video (its --crf), an animation or a folder of frames, refused before any work."""
    if is_video(output):
        check_crf(output, crf)
        check_output(output, overwrite, None)
        return
    if crf is not None:
        raise OutputError(f"--crf is a video's quality; {output} is not a video")
    check_clip_output(output, overwrite, names)


def stylize_clip(
    model: Model,
    clip,
    output,
    *,
    strength: float = 1.0,
    size: int | None = None,
    overwrite: bool = False,
    crf: int | None = None,
    recipe: dict | None = None,
    preserve_color: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> Styled:
    """Every frame of ``clip`` through ``model``'s network into ``output``; ``size``: the long side
    (default: the clip's own); ``on_frame(done, total)`` after each frame. Everything is checked
    before the first frame; an interrupted run writes the frames done."""
    clip, output = Path(clip), Path(output)
    video_in = is_video(clip)
    source = VideoSource(clip) if video_in else read_clip(clip)
    if not video_in and len(source) < 2:
        raise ImageError(f"{clip} is one picture, not a clip: give it as an IMAGE")
    total = source.total if video_in else len(source)
    names = [f"frame_{i:05d}" for i in range(1, total + 1)]
    _check_output(output, overwrite, crf, names)
    fps = float(source.fps) if video_in else 1000.0 * len(source) / max(1, sum(source.durations))
    durations = [round(1000 / fps)] * total if video_in else list(source.durations)
    device = next(model.net.parameters()).device
    kept, sink, done, interrupted, start = [], None, 0, False, time.perf_counter()
    try:
        for frame in source:
            wh = fit_size(frame.size, size) if size else frame.size
            picture = to_pil(stylize(model.net, to_tensor(frame.convert("RGB"), wh, device), strength, preserve_color))
            if not is_video(output):
                kept.append(picture)
            else:
                if sink is None:  # the first frame gives the video its size
                    sink = VideoSink(
                        output,
                        recipe,
                        fps=fps,
                        size=picture.size,
                        crf=crf,
                        audio_from=source if video_in else None,
                        overwrite=overwrite,
                    )
                sink.add(picture)
            done += 1
            if on_frame is not None:
                on_frame(done, total)
    except KeyboardInterrupt:
        interrupted = True
    ms = (time.perf_counter() - start) * 1000 / max(1, done)
    with signals_deferred():
        if sink is not None:
            written = sink.close()
        else:
            written = write_clip(kept, output, durations, source.loop, names, recipe, overwrite) if kept else None
    return Styled(written, done, total, interrupted, ms)
