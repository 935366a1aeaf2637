"""Pictures through a style network (:mod:`dreamstyle.fastnet`), one forward pass each, no
optimization: a source of :func:`dreamstyle.drive.drive` (:class:`Stylized`), so a still, a folder of
images, an animation (GIF, WebP, APNG) or a video file goes into the same sinks as an optimized run
(an image file, a folder of images, an animation or a folder of frames, a video that keeps the source
video's sound), each written atomically, with the one stop policy: Ctrl-C keeps what was done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from .clips import Clip, is_animation, read_clip
from .drive import drive
from .drive.made import FrameDone, SequenceResult
from .drive.sinks import clip_sink
from .drive.sources import Ended
from .errors import ImageError, Interrupted, OutputError, UserError
from .fastnet import Model, stylize
from .images import ALPHA, fit_size, load_image, to_pil, to_tensor
from .runner import Result
from .stop import Reason
from .video import VideoSource, is_video


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
    """A video file or an animation (more than one frame): what :func:`open_frames` takes."""
    path = Path(path)
    return path.is_file() and (is_video(path) or is_animation(path))


def open_frames(path) -> Clip | VideoSource:
    """A clip file's frames: a video streamed, an animation read whole (one picture is refused)."""
    path = Path(path)
    if is_video(path):
        return VideoSource(path)
    clip = read_clip(path)
    if len(clip) < 2:
        raise ImageError(f"{path} is one picture, not a clip: give it as an IMAGE")
    return clip


def styled_picture(model: Model, image, strength: float = 1.0, size: int | None = None, preserve_color=False):
    """``image`` (a PIL image) through ``model``'s network at the long side ``size`` (default: its own):
    a PIL image; a transparent image stays transparent (the network paints the RGB, composited on
    white, and the picture's transparency returns)."""
    device = next(model.net.parameters()).device
    wh = fit_size(image.size, size) if size else image.size
    picture = to_pil(stylize(model.net, to_tensor(image, wh, device), strength, preserve_color))
    alpha = image.info.get(ALPHA)
    if alpha is not None:
        picture.putalpha(alpha.resize(wh, Image.BILINEAR))
    return picture


class Stylized:
    """``pictures`` through ``model``: a list of image paths (each named by its stem; one that cannot be
    read is told to ``on_error(name, line)`` and the others go on, or raises without ``on_error``), or
    a clip (:func:`open_frames`: its frames, named ``frame_00001``...). ``recipe``: what each
    picture's recipe says (its input's name is added). With ``keep`` the pictures are kept for the
    result (a clip written at the end, the Python API); :attr:`ms` is the time a picture took."""

    remote = False

    def __init__(self, model: Model, pictures, *, recipe: dict, options: dict | None = None, on_error=None):
        self.model, self.recipe, self.on_error = model, recipe, on_error
        self.options = options or {}  # strength, size, preserve_color: styled_picture's
        self.clip = None if isinstance(pictures, (list, tuple)) else pictures
        self.paths = [Path(p) for p in pictures] if self.clip is None else []
        self.total = len(self.clip) if self.clip is not None else len(self.paths)
        digits = max(5, len(str(self.total)))
        self.names = (
            [p.stem for p in self.paths]
            if self.clip is None
            else [f"frame_{i:0{digits}d}" for i in range(1, self.total + 1)]
        )
        video = isinstance(self.clip, VideoSource)
        self.fps = (
            float(self.clip.fps) if video else 1000.0 * self.total / max(1, sum(getattr(self.clip, "durations", [])))
        )
        self.audio_from = self.clip if video else None
        self.keep, self.made, self.failed, self.ms, self.count = True, [], [], 0.0, 0

    def runs(self, job=None, executor=None, callback: Callable | None = None) -> Iterator[object]:
        """Each picture made (a :class:`~dreamstyle.drive.made.FrameDone`), then :class:`Ended`."""
        return self._run()

    def _inputs(self) -> Iterator[tuple[int, object]]:
        if self.clip is not None:
            yield from enumerate(self.clip)
            return
        for i, path in enumerate(self.paths):
            try:
                yield i, load_image(path)
            except UserError as exc:  # an image that cannot be read: one line, the others go on
                if self.on_error is None:
                    raise
                self.failed.append(path.name)
                self.on_error(path.name, str(exc))

    def _run(self) -> Iterator[object]:
        start = time.perf_counter()
        for i, image in self._inputs():
            picture = styled_picture(self.model, image, **self.options)
            source = self.paths[i].name if self.paths else self.names[i]
            recipe = {**self.recipe, "content": source}
            self.count += 1
            self.ms = (time.perf_counter() - start) * 1000 / self.count
            if self.keep:
                self.made.append(picture)
            yield FrameDone(i, self.total, picture, {}, None, self.names[i], recipe)
        yield Ended()

    def result(self, stopped: Reason | None, fault: str = ""):
        """What was made: one picture given as one path, a :class:`~dreamstyle.runner.Result`; else a
        :class:`~dreamstyle.drive.made.SequenceResult` (a clip's frames with their durations)."""
        recipe = {**self.recipe, "stopped": stopped.value if stopped else None}
        if self.clip is None and self.total == 1:
            if not self.made:
                raise Interrupted("interrupted before the picture was made; nothing was written")
            return Result(self.made[0], [], {**recipe, "content": self.paths[0].name}, stopped)
        k = len(self.made)
        durations = list(self.clip.durations[:k]) if isinstance(self.clip, Clip) else [round(1000 / self.fps)] * k
        return SequenceResult(
            self.made,
            durations,
            getattr(self.clip, "loop", 0),
            self.names[:k],
            [],
            recipe,
            stopped,
            total=self.total,
            failed=list(self.failed),
        )


def stylize_clip(
    model: Model,
    clip,
    output,
    *,
    recipe: dict | None = None,
    overwrite: bool = False,
    crf=None,
    on_frame=None,
    **options,
):
    """Every frame of the clip file ``clip`` through ``model``'s network into ``output`` (an animation,
    a folder of frames or a video with the source's sound; ``crf`` a video's quality); ``options``:
    :func:`styled_picture`'s; ``on_frame(done, total)`` after each frame. Everything is checked
    before the first frame; an interrupted run writes the frames done."""
    recipe = recipe or {"command": "stylize"}
    source = Stylized(model, open_frames(clip), recipe=recipe, options=options)
    sink = clip_sink(Path(output), source, recipe, overwrite=overwrite, crf=crf, resumable=False).check()
    source.keep = sink.keeps
    if on_frame is not None:
        sink.shown = lambda done: on_frame(done.index + 1, source.total)
    done = drive(None, source, sink)
    return Styled(done.stop.path, source.count, source.total, done.stop.reason is Reason.INTERRUPTED, source.ms)


__all__ = ["OutputError", "Stylized", "Styled", "is_clip", "open_frames", "styled_picture", "stylize_clip"]
