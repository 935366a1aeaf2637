"""Atomic files and where a run's files went: every output goes through :func:`publish` (a temporary
file beside its target, ``.NAME.dreamstyle-PID.part``, flushed to disk, then renamed into place), so
a crash, a full disk or Ctrl-C never leaves a half-written file and an old file is replaced only by
a whole new one. An :class:`Outbox` records each file of a run, and rescues one that cannot be
written where asked to a temporary folder (:func:`rescue_line` says where)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import OutputError
from .formats import png_write

PART = ".part"
TEMP_TAG = ".dreamstyle-"


# --- atomic files ---------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_path_for(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_TAG}{os.getpid()}-", suffix=PART, dir=path.parent or ".")
    os.close(fd)
    return Path(tmp)


def clean_stale_temps(path: Path) -> None:
    """Remove the temporary files an earlier, killed run left for ``path`` (``.NAME.dreamstyle-PID-*.part``
    of a process that is gone); nothing else is touched."""
    prefix = f".{path.name}{TEMP_TAG}"
    try:
        candidates = [
            p for p in (path.parent or Path(".")).iterdir() if p.name.startswith(prefix) and p.name.endswith(PART)
        ]
    except OSError:
        return
    for p in candidates:
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                p.unlink()
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def free_name(path: Path) -> Path:
    """``NAME-2.EXT``, ``NAME-3.EXT``, ...: the first that does not exist."""
    for k in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise OutputError(f"cannot find a free name beside {path}")


def _place(tmp: Path, path: Path) -> Path:
    """Rename ``tmp`` to ``path`` without replacing a file that is there (one that appeared while the
    run worked): it goes beside it under a free name instead. A hard link fails if the target
    exists, atomically; where links are not supported, the check and the rename are two steps."""
    target = path
    while True:
        try:
            os.link(tmp, target)
        except FileExistsError:
            target = free_name(path)
            continue
        except OSError:  # no hard links here (FAT, some network folders)
            if target.exists():
                target = free_name(path)
                continue
            os.replace(tmp, target)
            return target
        os.unlink(tmp)
        return target


def settle(tmp: Path, path: Path, overwrite: bool) -> Path:
    """Put the finished temporary file ``tmp`` in place of ``path`` (beside a file that appeared there
    while the run worked, without ``overwrite``); where it went."""
    if overwrite:
        os.replace(tmp, path)
        return path
    return _place(tmp, path)


def publish(path: str | os.PathLike, write: Callable, overwrite: bool = True) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary file beside it, which is then
    renamed into place. Without ``overwrite`` an existing file is never replaced, even one that
    appeared while the run worked: the new file goes beside it (``NAME-2.EXT``). Returns the path
    written."""
    path = Path(path)
    clean_stale_temps(path)
    tmp = temp_path_for(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        return settle(tmp, path, overwrite)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = True, outbox: Outbox | None = None):
    return _put(Path(path), lambda fh: fh.write(data), overwrite, outbox)


def write_json(path: str | os.PathLike, data, overwrite: bool = True, outbox: Outbox | None = None):
    return write_bytes(path, (json.dumps(data, indent=1, default=str) + "\n").encode(), overwrite, outbox)


@contextlib.contextmanager
def signals_deferred():
    """Ctrl-C and SIGTERM wait until the block is done (writing outputs); yields the signals received."""
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
        except ValueError:  # not the main thread
            pass
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


# --- a run's files: where they went ---------------------------------------------------------------------


@dataclass
class Written:
    """One file of a run: where it was asked for, where it is, and why not there if so."""

    intended: Path
    path: Path | None  # None: it could not be written anywhere
    rescued: bool = False  # in the rescue folder (the temporary folder), not where asked
    reason: str = ""

    @property
    def beside(self) -> bool:
        """The target appeared while the run worked: the new file is beside it."""
        return self.path is not None and not self.rescued and self.path != self.intended


@dataclass
class Outbox:
    """Writes a run's files, every one the same way: atomically (:func:`publish`); without
    ``overwrite`` never over a file, even one that appeared during the run; and what cannot be
    written where asked (disk full, folder gone, a writer that fails) goes to one rescue folder in
    the temporary folder instead, in the same format or, if the format itself failed, as PNG frames."""

    overwrite: bool = False
    written: list[Written] = field(default_factory=list)
    rescue_dir: Path | None = None

    def _rescue_folder(self) -> Path:
        if self.rescue_dir is None:
            self.rescue_dir = Path(tempfile.mkdtemp(prefix="dreamstyle-rescue-"))
        return self.rescue_dir

    def write(
        self, path: str | os.PathLike, write: Callable, frames: Sequence | None = None, recipe: dict | None = None
    ) -> Written:
        """``write(fh)`` to ``path``; ``frames`` (PIL) are what to save as PNGs if the format fails."""
        path = Path(path)
        try:
            done = Written(path, publish(path, write, self.overwrite))
        except Exception as exc:  # noqa: BLE001 - every failure to write is rescued the same way
            done = self._rescue(path, write, exc, frames, recipe)
        self.written.append(done)
        return done

    def _rescue(self, path: Path, write, exc: Exception, frames, recipe) -> Written:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        try:
            folder = self._rescue_folder()
            if isinstance(exc, OSError):  # the place failed, not the format: the same file elsewhere
                return Written(path, publish(folder / path.name, write, False), True, reason)
            if frames:  # the format failed: the pictures as PNGs
                target = folder / path.stem
                target.mkdir(exist_ok=True)
                for i, frame in enumerate(frames, start=1):
                    publish(target / f"frame_{i:05d}.png", lambda fh, f=frame: png_write(fh, [f], recipe), False)
                return Written(path, target, True, reason)
        except OSError:
            pass
        return Written(path, None, True, reason)

    @property
    def failed(self) -> list[Written]:
        return [w for w in self.written if w.rescued]


def rescue_line(outbox: Outbox, what: str, where: str = "") -> str:
    """One line for files that could not be written where asked: what went where instead."""
    failed = outbox.failed
    if not failed:
        return ""
    reason = failed[0].reason
    saved = [w for w in failed if w.path is not None]
    if len(failed) == 1 and not where:
        names = str(failed[0].intended)
    else:
        names = ", ".join(w.intended.name for w in failed[:4]) + (
            f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        )
    head = f"cannot write {names}{' to ' + where if where else ''} ({reason})"
    if not saved:
        return f"{head}; the {what} could not be saved anywhere else either"
    if len(saved) == 1:
        return f"{head}; the {what} was saved to {saved[0].path} instead"
    return f"{head}; they were saved in {outbox.rescue_dir} instead"


def _put(path: Path, write: Callable, overwrite: bool, outbox: Outbox | None, frames=None, recipe=None) -> Path | None:
    """Through the outbox (rescued on failure) when there is one, else straight (failures raise)."""
    if outbox is None:
        return publish(path, write, overwrite)
    return outbox.write(path, write, frames, recipe).path
