"""Video files in and out, streaming, through PyAV (the optional extra ``dreamstyle[video]``; its
wheels carry the FFmpeg libraries, so nothing is downloaded at run time).

- :class:`VideoSource` decodes a video's frames as they are asked for (a segment with ``start`` and
  ``duration``, resampled to ``fps``), so memory does not grow with the video's length.
- :class:`VideoSink` encodes frames as they come (H.264, or VP9 for .webm, yuv420p, ``crf``) into
  a temporary file beside the output, copies the source's audio alongside (packets unchanged; cut to
  the frames written), and renames the file into place when it is closed: an interrupted run leaves
  a shorter, playable video, never half of one. The recipe goes in the container's comment tag.

The video writers are registered (kind "video") like every other format, so a plugin can add one.
"""

from __future__ import annotations

import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ImageError, OptionError, OutputError
from .stop import Reason, Stop
from .writers import (
    Outbox,
    _umask,
    check_output,
    clean_stale_temps,
    parse_recipe,
    picture_of,
    publish,
    rescue_line,
    settle,
    signals_deferred,
    temp_path_for,
    write_json,
)

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm")
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
# audio codecs each container takes as they are (anything else is re-encoded, with a note)
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "webm": {"opus", "vorbis"},
}
AUDIO_ENCODER = {"webm": "libopus"}  # re-encoding: else AAC
CRF = {"libx264": 18, "libvpx-vp9": 32}  # visually near-lossless; --crf changes it
MAX_CRF = {"libx264": 51, "libvpx-vp9": 63}
EXTRA = "pip install 'dreamstyle[video]' (or: pip install av)"


def require_av():
    """PyAV, or one line naming the extra to install."""
    try:
        import av
    except ImportError:
        raise OptionError(f"video files need PyAV: {EXTRA}") from None
    return av


def is_video(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() in VIDEO_SUFFIXES


def _why(exc: Exception) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.removeprefix("[Errno 1094995529] ") or type(exc).__name__


# --- reading ------------------------------------------------------------------------------------------


class VideoSource:
    """A video's frames, decoded one at a time as the driver asks for them.

    ``start`` and ``duration`` (seconds) pick a segment; ``fps`` resamples (each output frame is the
    source frame showing at its time); without it the source's frame rate is kept. ``total`` is the
    number of frames the segment will give (from the header: the last one or two may differ)."""

    def __init__(
        self,
        path,
        start: float = 0.0,
        duration: float | None = None,
        fps: float | None = None,
        max_pixels: int | None = None,
    ):
        self.av = require_av()
        self.path = Path(path)
        if not self.path.is_file():
            raise ImageError(f"video not found: {self.path}")
        container = self._open()
        try:
            if not container.streams.video:
                raise ImageError(f"{self.path} has no video stream")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if ctx is None or not stream.width:
                codec = getattr(getattr(ctx, "codec", None), "name", None) or "unknown"
                raise ImageError(f"cannot read video {self.path}: its codec ({codec}) cannot be decoded here")
            self.size = (stream.width, stream.height)
            self.codec = ctx.name
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.source_fps = Fraction(rate) if rate else Fraction(25)
            self.fps = Fraction(fps).limit_denominator(1001) if fps else self.source_fps
            if stream.duration is not None and stream.time_base:
                length = float(stream.duration * stream.time_base)
            elif container.duration:
                length = container.duration / 1_000_000
            else:
                length = (stream.frames or 0) / float(self.source_fps)
            self.length = length
            self.audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        finally:
            container.close()
        if start < 0:
            raise OptionError(f"--start must be zero or more, not {start}")
        if duration is not None and not duration > 0:
            raise OptionError(f"--duration must be more than 0, not {duration}")
        if length and start >= length:
            raise OptionError(f"--start {start:g} is past the end of {self.path} ({length:.2f} s)")
        self.start = float(start)
        end = length if duration is None else min(length or float("inf"), start + duration)
        self.duration = end - self.start
        self.total = max(1, int(round(self.duration * float(self.fps))))
        if max_pixels:  # frames are streamed, not kept: only a frame's size is limited
            from .clips import _check_pixels

            _check_pixels(self.path, *self.size, 1, max_pixels, max_pixels)
        self.names = _Names(self.total)
        self.durations = _Durations(self.fps)
        self.loop, self.source = 0, str(self.path)

    def _open(self):
        try:
            return self.av.open(str(self.path))
        except Exception as exc:  # noqa: BLE001 - FFmpeg's reason, in one line
            raise ImageError(f"cannot read video {self.path}: {_why(exc)}") from None

    def __len__(self):
        return self.total

    def __iter__(self):
        """PIL RGB frames of the segment at ``fps``: frame k shows what the source shows at
        start + k / fps."""
        container = self._open()
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            if self.start > 0 and stream.time_base:
                container.seek(int(self.start / stream.time_base), stream=stream, backward=True, any_frame=False)
            step, k, held, held_t = 1 / float(self.fps), 0, None, None
            tol = 0.25 / float(max(self.fps, self.source_fps))
            for frame in self._decoded(container, stream):
                t = frame.time if frame.time is not None else (held_t or 0) + 1 / float(self.source_fps)
                while k < self.total and self.start + k * step + tol < t:  # shown by the frame held
                    yield (held if held is not None else frame).to_image()
                    k += 1
                if k >= self.total:
                    return
                held, held_t = frame, t
            last = held_t + 1 / float(self.source_fps) if held_t is not None else 0
            while held is not None and k < self.total and self.start + k * step < last - tol:
                yield held.to_image()
                k += 1
        finally:
            container.close()

    def _decoded(self, container, stream):
        try:
            for packet in container.demux(stream):
                yield from packet.decode()
        except (self.av.FFmpegError, OSError) as exc:
            raise ImageError(f"cannot read video {self.path}: {_why(exc)} (is it damaged?)") from None


class _Names:
    """Frame names, made when asked (a video's frames are not listed up front)."""

    def __init__(self, total: int):
        self.digits = max(5, len(str(total)))

    def __getitem__(self, i):
        return f"frame_{i + 1:0{self.digits}d}"


class _Durations:
    def __init__(self, fps):
        self.ms = max(1, round(1000 / float(fps)))

    def __getitem__(self, item):
        if isinstance(item, slice):
            return [self.ms] * len(range(*item.indices(item.stop or 0)))
        return self.ms


# --- writing ------------------------------------------------------------------------------------------


def codec_for(path) -> str:
    return "libvpx-vp9" if Path(path).suffix.lower() == ".webm" else "libx264"


def check_crf(path, crf: int | None) -> None:
    if crf is None:
        return
    codec = codec_for(path)
    if not 0 <= crf <= MAX_CRF[codec]:
        raise OptionError(
            f"--crf goes from 0 (lossless) to {MAX_CRF[codec]} with {Path(path).suffix.lower()}, not {crf}"
        )


class VideoSink:
    """Encodes frames into ``path`` as they come (see the module's doc); ``audio_from`` is a
    :class:`VideoSource` (or None) whose audio, from its ``start``, is copied beside the frames."""

    def __init__(
        self,
        path,
        recipe: dict | None = None,
        *,
        fps,
        size: tuple[int, int],
        crf: int | None = None,
        audio_from: VideoSource | None = None,
        overwrite: bool = True,
        note=None,
        **_,
    ):
        av = self.av = require_av()
        self.path, self.overwrite, self.note = Path(path), overwrite, note or (lambda line: None)
        suffix = self.path.suffix.lower()
        if suffix not in CONTAINERS:
            raise OutputError(f"cannot write a video to {self.path}: give a {', '.join(VIDEO_SUFFIXES)} file")
        self.format = CONTAINERS[suffix]
        self.fps = Fraction(fps).limit_denominator(1001)
        w, h = size
        self.size = (max(2, w - w % 2), max(2, h - h % 2))  # yuv420p: even sides (an odd last row or column is cut)
        clean_stale_temps(self.path)
        self.tmp = temp_path_for(self.path)
        self.count, self.audio = 0, None
        try:
            self.out = av.open(str(self.tmp), "w", format=self.format)
            codec = codec_for(self.path)
            self.stream = self.out.add_stream(codec, rate=self.fps)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
            crf = CRF[codec] if crf is None else crf
            options = {"crf": str(crf)}
            if codec == "libvpx-vp9":
                options.update({"b": "0", "row-mt": "1", "deadline": "good", "cpu-used": "4"})
            else:
                options["preset"] = "medium"
            self.stream.options = options
            if recipe is not None:
                self.out.metadata["comment"] = json.dumps(recipe, separators=(",", ":"), default=str)
            if audio_from is not None and audio_from.audio:
                self.audio = _Audio(av, audio_from, self.out, self.format, self.note)
        except BaseException:
            self._discard()
            raise

    def add(self, image) -> None:
        """One more frame (a PIL image of the size given; converted to RGB)."""
        if image.mode != "RGB":
            image = picture_of(image, alpha=False)
        if image.size != self.size:
            image = image.crop((0, 0, *self.size))
        frame = self.av.VideoFrame.from_image(image)
        frame.pts = self.count
        frame.time_base = 1 / self.fps
        for packet in self.stream.encode(frame):
            self.out.mux(packet)
        self.count += 1
        if self.audio is not None:
            self.audio.up_to(self.count / self.fps)

    def close(self) -> Path | None:
        """Finish the file and put it in place; with no frames written, nothing is (None)."""

        if self.count == 0:
            self._discard()
            return None
        try:
            for packet in self.stream.encode():
                self.out.mux(packet)
            if self.audio is not None:
                self.audio.up_to(self.count / self.fps)
                self.audio.finish()
            self.out.close()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(self.tmp, 0o666 & ~_umask())
        except BaseException:
            self._discard()
            raise
        return settle(self.tmp, self.path, self.overwrite)

    def _discard(self) -> None:
        try:
            if getattr(self, "out", None) is not None:
                self.out.close()
        except Exception:  # noqa: BLE001 - the file goes anyway
            pass
        if getattr(self, "audio", None) is not None:
            self.audio.source.close()
        try:
            self.tmp.unlink()
        except (FileNotFoundError, AttributeError):
            pass


class _Audio:
    """The source's first audio stream, from its ``start``, written beside the frames as they come:
    its packets as they are where the container takes the codec, else decoded and re-encoded."""

    def __init__(self, av, source: VideoSource, out, fmt: str, note):
        self.av, self.start = av, source.start
        self.source = av.open(str(source.path))
        self.input = self.source.streams.audio[0]
        self.copy = self.input.codec_context.name in AUDIO_COPY.get(fmt, {self.input.codec_context.name})
        if self.copy:
            self.stream = out.add_stream_from_template(self.input)
        else:
            codec = AUDIO_ENCODER.get(fmt, "aac")
            rate = self.input.codec_context.sample_rate or 48000
            if codec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48000
            self.stream = out.add_stream(codec, rate=rate)
            self.stream.layout = self.input.codec_context.layout or "stereo"
            self.resampler = None
            note(
                f"note: the audio ({self.input.codec_context.name}) cannot go into {fmt} as it is; "
                f"it is re-encoded as {codec.removeprefix('lib')}"
            )
        if self.start > 0 and self.input.time_base:
            self.source.seek(int(self.start / self.input.time_base), stream=self.input, backward=True)
        self.packets = self.source.demux(self.input)
        self.pending, self.done, self.offset = None, False, None

    def up_to(self, seconds) -> None:
        """Write the audio that plays before ``seconds`` of the output."""
        limit = self.start + float(seconds)
        while not self.done:
            packet = self.pending if self.pending is not None else next(self.packets, None)
            self.pending = None
            if packet is None or packet.pts is None and packet.size == 0:
                self.done = True
                return
            if packet.pts is None:
                continue
            t = float(packet.pts * packet.time_base)
            if t >= limit:
                self.pending = packet
                return
            if t + float((packet.duration or 0) * packet.time_base) <= self.start:
                continue  # before the segment
            self._write(packet)

    def _write(self, packet) -> None:
        if self.copy:
            shift = int(round(self.start / packet.time_base))
            packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            if packet.pts < 0 and self.start > 0:
                return
            packet.stream = self.stream
            self.out_mux(packet)
            return
        for frame in packet.decode():
            if self.resampler is None:
                self.resampler = self.av.AudioResampler(
                    format=self.stream.codec_context.format,
                    layout=self.stream.codec_context.layout,
                    rate=self.stream.codec_context.sample_rate,
                )
            frame.pts = None
            for f in self.resampler.resample(frame):
                for p in self.stream.encode(f):
                    self.out_mux(p)

    def out_mux(self, packet) -> None:
        self.stream.container.mux(packet)

    def finish(self) -> None:
        if not self.copy:
            if self.resampler is not None:
                for f in self.resampler.resample(None):
                    for p in self.stream.encode(f):
                        self.out_mux(p)
            for p in self.stream.encode(None):
                self.out_mux(p)
        self.source.close()


# --- a run written as a video, resumable ----------------------------------------------------------------

STATE_FILE = "state.json"
LAST_FILE = "last.pt"


def frames_folder(path) -> Path:
    """Where a video run keeps its frames done until the video is complete: OUT.frames beside OUT."""
    path = Path(path)
    return path.with_name(path.name + ".frames")


class VideoRun:
    """A sink of :func:`~dreamstyle.drive.drive` for a clip written as a video: each frame done is
    encoded at once, and kept as a PNG in :func:`frames_folder` with the run's state (the settings, the
    frames done, the last frame's optimized tensor), until the video is complete. An interrupted run
    so leaves a playable shorter video, and what ``resume`` needs to go on from its last frame (its
    frames re-encoded, the next one warm-started from the last: :meth:`resume_point`). ``key`` is the
    run's settings as a recipe: a resume with other settings is refused, in one line. ``frames``: the
    source (its ``fps``, and ``audio_from``: the video whose sound is copied); ``log_json``: the loss
    history, written at the end; ``shown``: told each frame before it is written. With
    ``resumable=False`` (frames made independently, as a style network's: nothing to resume from) no
    frame is kept beside the video."""

    snapshot_every = 0
    keeps = False  # the frames are written as they come: a source need not keep them

    def __init__(
        self,
        path,
        key: dict,
        frames,
        *,
        crf: int | None = None,
        overwrite: bool = False,
        resume: bool = False,
        recipe: bool = True,
        log_json=None,
        note=None,
        writer=None,
        resumable: bool = True,
    ):
        check_crf(path, crf)
        check_output(path, True, None)
        if log_json is not None:
            check_output(log_json, overwrite, (".json",))
        self.path, self.key, self.fps, self.crf = Path(path), key, frames.fps, crf
        self.audio_from, self.log_json, self.outbox = frames.audio_from, log_json, Outbox(overwrite)
        self.recipe, self.note, self.shown = recipe, note or (lambda line: None), None
        self.writer, self.resumable = writer or VideoSink, resumable
        self.folder = frames_folder(self.path)
        self.sink, self.done, self.resumed = None, 0, False
        state = self._state()
        if self.folder.exists():
            if resume:
                if state is None:
                    raise OutputError(f"{self.folder} holds no run to resume; remove it, or run without --resume")
                if state.get("settings") != key:
                    changed = sorted(
                        k
                        for k in set(key) | set(state.get("settings", {}))
                        if key.get(k) != state.get("settings", {}).get(k)
                    )
                    raise OptionError(
                        f"--resume: the unfinished run in {self.folder} was made with other settings "
                        f"({', '.join(changed)}); give the same options, or --overwrite without "
                        "--resume to start over"
                    )
                self.done, self.resumed = int(state.get("done", 0)), True
            elif overwrite:
                shutil.rmtree(self.folder)
            else:
                done = f" ({state.get('done', 0)} frames done)" if state else ""
                raise OutputError(
                    f"{self.folder} holds an unfinished run of {self.path}{done}: add --resume to go on "
                    "from its last frame, or --overwrite to start over"
                )
        elif self.path.exists() and not overwrite:
            if resume:
                raise OutputError(
                    f"{self.path} has no unfinished run to resume ({self.folder} is not there); "
                    "pass --overwrite to make it again"
                )
            raise OutputError(f"{self.path} exists; pass --overwrite to replace it")
        self.overwrite = overwrite or self.resumed  # a resumed run replaces its own shorter video

    def check(self) -> VideoRun:
        """Everything is checked when it is made (the output, --crf, --resume's state)."""
        return self

    def _state(self) -> dict | None:
        try:
            return json.loads((self.folder / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    def resume_point(self):
        """``(frames done, the last one's optimized tensor)`` to resume from, or None."""
        if not self.resumed or not self.done:
            return None
        import torch

        try:
            previous = torch.load(self.folder / LAST_FILE, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a damaged state: say which file
            raise OutputError(
                f"cannot resume from {self.folder}: {LAST_FILE} is unreadable ({_why(exc)}); --overwrite starts over"
            ) from None
        return self.done, previous

    def frame_path(self, index: int) -> Path:
        return self.folder / f"frame_{index + 1:06d}.png"

    def put(self, done) -> None:
        """Frame ``done`` into the video and the kept frames; Ctrl-C waits until both are whole."""

        if self.shown is not None:
            self.shown(done)
        with signals_deferred() as received:
            self._keep(done)
        if received:
            raise KeyboardInterrupt

    def _keep(self, done) -> None:
        if self.sink is None:
            self._open(done)
        self.sink.add(done.image)
        self.done = done.index + 1
        if not self.resumable:
            return
        self.folder.mkdir(exist_ok=True)
        publish(self.frame_path(done.index), lambda fh: done.image.save(fh, "PNG", compress_level=1))
        if done.tensor is not None:
            import torch

            publish(self.folder / LAST_FILE, lambda fh: torch.save(done.tensor, fh))
        state = {"settings": self.key, "done": self.done, "output": self.path.name}
        publish(self.folder / STATE_FILE, lambda fh: fh.write(json.dumps(state, default=str).encode()))

    def _open(self, done) -> None:

        self.sink = self.writer(
            self.path,
            done.recipe if self.recipe else None,
            fps=self.fps,
            size=done.image.size,
            crf=self.crf,
            audio_from=self.audio_from,
            overwrite=self.overwrite,
            note=self.note,
        )
        for i in range(done.index):  # a resumed run: the frames done before, again
            try:
                with Image.open(self.frame_path(i)) as img:
                    self.sink.add(img.convert("RGB"))
            except OSError as exc:
                raise OutputError(
                    f"cannot resume from {self.folder}: frame {i + 1} is missing or damaged "
                    f"({_why(exc)}); --overwrite starts over"
                ) from None

    def close(self, result) -> Stop:
        """Finish the video (of the frames done; once it is complete, the kept frames go) and write the
        log: how the run ended and where the video went."""

        written = (
            self.sink.close() if self.sink is not None else (self.path if self.resumed and self.path.exists() else None)
        )
        if result.stopped is None and written is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        if self.log_json is not None:
            write_json(self.log_json, result.history, self.overwrite, self.outbox)
        n, total = self.done, result.total
        if result.stopped is None:
            where = f"wrote {written} ({n} frames)"
        elif written:
            again = " (--resume goes on from there)" if self.resumable else ""
            where = f"the {n} of {total} frames done are in {written}{again}"
        else:
            where = "nothing was written"
        return Stop(
            Reason.of(result.stopped),
            where,
            getattr(result, "fault", ""),
            rescue=rescue_line(self.outbox, "log"),
            path=written,
        )


def read_recipe(path) -> dict | None:
    """The recipe in a video's comment tag, or None."""
    try:
        av = require_av()
        with av.open(str(path)) as container:
            text = container.metadata.get("comment") or container.metadata.get("COMMENT")
    except Exception:  # noqa: BLE001 - no recipe to be had
        return None
    return parse_recipe(text)


def probe(path) -> dict:
    """What a video file holds: frames, frame rate, duration (s), size, and its audio (for tests and
    the benchmarks): ``{"frames", "fps", "duration", "size", "audio", "audio_duration"}``."""
    av = require_av()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        audio_end = 0.0
        if audio is not None:
            for packet in container.demux(audio):
                if packet.pts is not None:
                    audio_end = max(audio_end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        rate = stream.average_rate or stream.guessed_rate
        return {
            "frames": frames,
            "fps": float(rate) if rate else None,
            "duration": frames / float(rate) if rate else None,
            "size": (stream.width, stream.height),
            "audio": audio.codec_context.name if audio is not None else None,
            "audio_duration": audio_end,
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
        }


def synthetic_video(
    path, seconds: float = 2.0, fps: int = 10, size: tuple[int, int] = (64, 48), audio: bool = True
) -> Path:
    """A small video for tests and benchmarks, made by PyAV itself: a colour gradient moving right
    10 px a frame, with a 440 Hz tone as its audio (AAC; Opus in .webm)."""
    av = require_av()
    path = Path(path)
    w, h = size
    webm = path.suffix.lower() == ".webm"
    with av.open(str(path), "w", format=CONTAINERS.get(path.suffix.lower())) as out:
        video = out.add_stream("libvpx-vp9" if webm else "libx264", rate=fps)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        sound = None
        if audio:
            sound = out.add_stream("libopus" if webm else "aac", rate=48000)
            sound.layout = "mono"
        for i in range(int(round(seconds * fps))):
            x = (np.arange(w)[None, :] * 255 / max(w - 1, 1) + 10 * i) % 256
            y = np.arange(h)[:, None] * 255 / max(h - 1, 1)
            rgb = np.stack(
                [np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), np.full((h, w), (40 * i) % 256)], -1
            ).astype(np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if sound is not None:
            rate, chunk = 48000, 960
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
            resampler = av.AudioResampler(format=sound.codec_context.format, layout="mono", rate=rate)
            for k in range(0, len(tone), chunk):
                frame = av.AudioFrame.from_ndarray(tone[None, k : k + chunk], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, k
                for f in resampler.resample(frame):
                    for packet in sound.encode(f):
                        out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path
