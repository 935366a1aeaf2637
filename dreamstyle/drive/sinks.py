"""Sinks: where what a job made goes, each through one outbox (atomic writes; what cannot be written
where asked is rescued), each checked before any work, each saying where the output went."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import OptionError, OutputError
from ..stop import Reason, Stop, kept_as
from ..video import VideoRun
from ..writers import (
    Outbox,
    check_clip_output,
    check_folder_output,
    check_format,
    check_output,
    folder_outputs,
    precise,
    rescue_line,
    save_gif_frames,
    save_image,
    signals_deferred,
    suffixes,
    write_clip,
    write_json,
    writer_for,
    writers,
)


class ImageFile:
    """A picture file, by its suffix and at full precision (``bit_depth``, ``quality``), with its recipe
    unless ``recipe=False``; its loss history (``log_json``) and its animation (``gif``) beside it.
    ``snapshot_every``: the steps between the animation's frames (0: none); ``note``: where a line
    about the output goes (a picture with transparency written to a format without it)."""

    def __init__(
        self,
        path,
        *,
        overwrite: bool = False,
        bit_depth: int | None = None,
        quality: int | None = None,
        recipe: bool = True,
        log_json=None,
        gif=None,
        snapshot_every: int = 0,
        note: Callable[[str], None] | None = None,
        what: str = "image",
        outbox: Outbox | None = None,
    ):
        self.path, self.overwrite, self.bit_depth, self.quality = Path(path), overwrite, bit_depth, quality
        self.recipe, self.log_json, self.gif, self.snapshot_every = recipe, log_json, gif, snapshot_every
        self.note, self.what, self.shown = note, what, None
        self.outbox = outbox if outbox is not None else Outbox(overwrite)

    def check(self) -> ImageFile:
        """Refuse, before any work, an output that exists (unless ``overwrite``) or a format that cannot
        take the bit depth or quality asked."""
        check_output(self.path, self.overwrite, suffixes("image"))
        check_format(self.path, "image", self.bit_depth, self.quality)
        if self.log_json is not None:
            check_output(self.log_json, self.overwrite, (".json",))
        if self.gif is not None:
            check_output(self.gif, self.overwrite, (".gif", ".webp"))
        return self

    def put(self, done) -> None:
        """The picture made by a source that runs its own items (a style network's): shown; written at
        the end (:meth:`close`)."""
        if self.shown is not None:
            self.shown(done)

    def write(self, result) -> tuple[Path | None, Path | None]:
        """The picture, the log and the animation, each through the outbox; where the picture and the
        animation went."""
        recipe = result.recipe if self.recipe else None
        image = result.tensor[:1] if result.tensor is not None else result.image
        has_alpha = image.shape[1] == 4 if result.tensor is not None else image.mode == "RGBA"
        if has_alpha and not writer_for(self.path, "image").alpha and self.note is not None:
            self.note(f"note: {self.path.suffix.lower()} has no transparency; the picture is flattened onto white")
        written = save_image(
            image, self.path, recipe, self.overwrite, self.outbox, bit_depth=self.bit_depth, quality=self.quality
        )
        if self.log_json is not None:
            write_json(self.log_json, result.history, self.overwrite, self.outbox)
        gif = None
        if self.gif is not None and result.frames:
            gif = save_gif_frames(result.frames, self.gif, self.overwrite, outbox=self.outbox)
        return written, gif

    def close(self, result) -> Stop:
        """``result`` written: how the run ended and where its output went."""
        written, gif = self.write(result)
        return Stop(
            Reason.of(result.stopped),
            stop_where(result.stopped, self.what, written, gif),
            getattr(result, "fault", ""),
            rescue=rescue_line(self.outbox, self.what),
            path=written,
        )


def stop_where(stopped, what: str, written, gif=None) -> str:
    """Where the picture went (and its animation, written beside it), by how the run ended."""
    if stopped is None:
        return f"wrote {written}" + (f" and {gif}" if gif else "")
    also = f" (its animation so far in {gif})" if gif else ""
    return f"{kept_as(stopped, what)} is in {written}{also}"


class _Pictures:
    """What a sink of many pictures is given: where (``path``: a folder or a clip file), each picture's
    name, and the output options (``bit_depth``, ``quality``; the recipe in each file unless
    ``recipe=False``; the run's loss history ``log_json``). ``shown``: told each picture as it is made
    (a progress display)."""

    snapshot_every = 0

    def __init__(
        self,
        path,
        names,
        *,
        overwrite: bool = False,
        bit_depth: int | None = None,
        quality: int | None = None,
        recipe: bool = True,
        log_json=None,
        shown: Callable | None = None,
        outbox: Outbox | None = None,
    ):
        self.path, self.names, self.overwrite = Path(path), list(names), overwrite
        self.bit_depth, self.quality, self.recipe, self.log_json = bit_depth, quality, recipe, log_json
        self.shown = shown
        self.outbox = outbox if outbox is not None else Outbox(overwrite)


class ImageFolder(_Pictures):
    """A folder of pictures, one per input image (``names``: their stems; each ``NAME.png``, with its
    recipe unless ``recipe=False``), each written as it is made; the run's loss history (``log_json``)
    at the end. ``shown``: told each picture before it is written (a progress display)."""

    def __init__(self, folder, names, **options):
        super().__init__(folder, names, **options)
        self.folder = self.path
        self.before = 0  # the images done before (--resume), left out
        self._outputs: list[Path] | None = None

    @property
    def outputs(self) -> list[Path]:
        """Each image's output file (two names that would write the same file are refused)."""
        if self._outputs is None:
            self._outputs = folder_outputs(self.folder, self.names)
        return self._outputs

    def check_shape(self) -> ImageFolder:
        """Refuse, before any work, an output that looks like a file, or a bit depth or quality that
        PNG cannot take."""
        if self.folder.suffix and not self.folder.is_dir():
            raise OutputError(
                f"the output for a folder of images is a folder; {self.folder} looks like a file "
                "(to make a clip of the images, add --frames)"
            )
        check_format(
            self.folder / "image.png", "image", self.bit_depth, self.quality, "a folder of images (written as .png)"
        )
        return self

    def check(self, done=()) -> ImageFolder:
        """Refuse, before any work, what :meth:`check_shape` refuses, a folder that cannot be written
        into, and an output file that exists (unless ``overwrite``) of the images to make (those not
        ``done``: indices, done before) or the log."""
        self.check_shape()
        done = set(done)
        self.before = len(done)
        check_folder_output(self.folder, [n for i, n in enumerate(self.names) if i not in done], self.overwrite)
        if self.log_json is not None:
            check_output(self.log_json, self.overwrite, (".json",))
        return self

    def put(self, done) -> None:
        """A picture made (a :class:`~dreamstyle.drive.made.FrameDone`): shown, then written through the
        outbox (atomically, with its recipe; one that cannot be written where asked is rescued, and
        the run goes on). Ctrl-C or SIGTERM while it is written waits, then stops the run."""
        if self.shown is not None:
            self.shown(done)
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError:
            pass  # the write below fails too, and is rescued
        image = precise(done.image, done.tensor) if (self.bit_depth or 8) > 8 else done.image
        with signals_deferred() as received:
            save_image(
                image,
                self.outputs[done.index],
                done.recipe if self.recipe else None,
                self.overwrite,
                self.outbox,
                bit_depth=self.bit_depth,
                quality=self.quality,
            )
        if received:
            raise KeyboardInterrupt

    def close(self, result) -> Stop:
        """The log written: how the run ended and how many of the images are in the folder; images that
        could not be made (``result.failed``) fail a run that otherwise finished."""
        with signals_deferred() as received:
            if self.log_json is not None:
                write_json(self.log_json, result.history, self.overwrite, self.outbox)
        outs = set(self.outputs)
        n = sum(1 for w in self.outbox.written if w.path is not None and not w.rescued and w.intended in outs)
        done = f" ({self.before} done before)" if self.before else ""
        where = f"{n} of {len(self.names)} images were written to {self.folder}{done}"
        rescue = rescue_line(self.outbox, "images", str(self.folder))
        failed = getattr(result, "failed", [])
        if failed and not (result.stopped or rescue or received):
            missing = f"{', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}"
            # described as "<fault>; <where>": what was written, then what could not be made
            return Stop(Reason.FAILED, f"{len(failed)} could not be made ({missing}: see above)", where)
        return Stop(
            Reason.INTERRUPTED if received else Reason.of(result.stopped),
            where if result.stopped or rescue or self.before else f"wrote {n} images to {self.folder}",
            getattr(result, "fault", ""),
            rescue=f"{where}; {rescue}" if rescue else "",
            path=self.folder if n else None,
        )


def clip_sink(path, frames, key: dict, **options):
    """Where a clip's frames go, by ``path``: a resumable video (a registered video format:
    :class:`~dreamstyle.video.VideoRun`, ``key`` its settings) or a clip file or folder of frames
    (:class:`ClipFile`). ``frames``: the source (its names, frame rate and sound); ``options``: the
    sinks' (``overwrite``, ``recipe``, ``log_json``; a video's ``crf``, ``resume``, ``note``,
    ``resumable``; a clip
    file's ``bit_depth``, ``quality``), each refused where it does not go."""
    path = Path(path)
    video = next((w for w in writers("video") if path.suffix.lower() in w.suffixes), None)
    given = {k: v for k, v in options.items() if v not in (None, False)}
    if video is None:
        if "crf" in given:
            raise OptionError(f"--crf is a video's quality; {path} is not a video")
        for name in ("crf", "resume", "note", "resumable"):
            options.pop(name, None)
        return ClipFile(path, frames.names, **options)
    for name in ("bit_depth", "quality"):
        if name in given and not (name == "bit_depth" and given[name] == 8):
            flag = "--" + name.replace("_", "-")
            raise OptionError(f"{flag} does not go with a video ({path.suffix.lower()}); its quality is --crf")
        options.pop(name, None)
    return VideoRun(path, key, frames, writer=video.write, **options)


class ClipFile(_Pictures):
    """A clip's frames, kept as they come and written at the end as one animation (a registered clip
    format: .gif, .webp, .png...) or a folder of frames (``names``: each frame's), at full precision,
    with the run's recipe (:class:`_Pictures`' options)."""

    keeps = True  # written at the end: the source keeps the frames

    def check(self) -> ClipFile:
        """Refuse, before any work, an output that exists (unless ``overwrite``), a format that is not a
        clip's or that cannot take the bit depth or quality asked, and a log that exists."""
        check_clip_output(self.path, self.overwrite, self.names, self.bit_depth, self.quality)
        if self.log_json is not None:
            check_output(self.log_json, self.overwrite, (".json",))
        return self

    def put(self, done) -> None:
        if self.shown is not None:
            self.shown(done)

    def close(self, result) -> Stop:
        """The frames made (``result``: a :class:`~dreamstyle.drive.made.SequenceResult`) and the log
        written: how the run ended and where the clip went."""
        n, written = len(result.frames), self.path
        if n:
            frames = result.frames
            if (self.bit_depth or 8) > 8 and len(result.tensors) == n:  # 16-bit frames: at full precision
                frames = [precise(f, t) for f, t in zip(result.frames, result.tensors)]
            written = write_clip(
                frames,
                self.path,
                result.durations,
                result.loop,
                result.names,
                result.recipe if self.recipe else None,
                self.overwrite,
                self.outbox,
                bit_depth=self.bit_depth,
                quality=self.quality,
            )
        if self.log_json is not None:
            write_json(self.log_json, result.history, self.overwrite, self.outbox)
        total = result.total or len(self.names)
        where = f"the {n} of {total} frames done are in {written}" if n else "nothing was written"
        return Stop(
            Reason.of(result.stopped),
            where if result.stopped else f"wrote {written} ({n} frames)",
            getattr(result, "fault", ""),
            rescue=rescue_line(self.outbox, f"{n} frames" if n != 1 else "frame"),
            path=written if n else None,
        )


class Memory:
    """What a run made, kept in memory (the result :func:`~dreamstyle.drive.drive` returns), each
    picture of many told to ``on_frame`` as it is made; a still's snapshots every ``snapshot_every``
    steps (``result.frames``): how the Python API and the web page run."""

    def __init__(self, on_frame: Callable | None = None, snapshot_every: int = 0):
        self.on_frame, self.snapshot_every = on_frame, snapshot_every

    def check(self) -> Memory:
        return self

    def put(self, done) -> None:
        if self.on_frame is not None:
            self.on_frame(done)

    def close(self, result) -> Stop:
        return Stop(Reason.of(result.stopped), fault=getattr(result, "fault", ""))
