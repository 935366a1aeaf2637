"""Sinks: where what a job made goes, each through one outbox (atomic writes; what cannot be written
where asked is rescued), each checked before any work, each saying where the output went."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..stop import Reason, Stop, kept_as
from ..writers import (
    Outbox,
    check_format,
    check_output,
    rescue_line,
    save_gif_frames,
    save_image,
    suffixes,
    write_json,
    writer_for,
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
        self.note, self.what = note, what
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
