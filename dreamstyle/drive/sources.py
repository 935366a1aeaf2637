"""Sources: what a job runs over. A still yields its one item (:class:`~dreamstyle.runner.Item`) for
:func:`~dreamstyle.drive.drive` to run; a folder of images runs its items on an executor itself
(:meth:`Folder.runs`) and yields each picture made (a :class:`~dreamstyle.drive.made.FrameDone`), then
how its task ended (:class:`Ended`), for the loop to write and to stop on."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import runner
from ..clips import list_images
from ..errors import ImageError, OutputError
from ..executors import executor_for, pack_inputs, relocated, unpack_inputs
from ..images import fit_size, to_tensor
from ..jobs import make_job
from ..replay import expected_recipe, made_with
from ..runner import Item
from ..settings import file_hash, plain
from ..stop import Reason
from .made import Collected, alphas, refuse_set


class Still:
    """One picture: the job's still input (its content, its input, or nothing for a texture), one item.
    ``item(job)`` is made once, so its stages can be known before the run (a progress bar)."""

    remote = False  # it runs in this process, not on another executor

    def __init__(self):
        self._item: Item | None = None

    def item(self, job) -> Item:
        if self._item is None:
            self._item = job.still_item()
        return self._item

    def items(self, job) -> Iterator[Item]:
        yield self.item(job)


@dataclass
class Ended:
    """A task of a source that runs its own items ended: why it stopped (None: it finished) and its line.
    A stop other than diverged ends the run (:func:`~dreamstyle.drive.drive`)."""

    stop: Reason | None = None
    fault: str = ""


class Folder:
    """Every still image of a folder (or a list of paths), each on its own: images of the same output
    size are made ``batch`` at a time (one at a time with --preserve-color: the style follows each),
    each batch one task of the executor (``dreamstyle.executors``: this process, or Ray's workers); a
    batch that runs out of memory is made again in halves. The images ``skip`` (indices: done before,
    see :meth:`resume`) are left out. An image that cannot be read or made (a user error) is told to
    ``on_error(name, line)`` and the rest go on (without ``on_error``, it raises
    :class:`~dreamstyle.errors.ImageError`)."""

    remote = True  # its batches may run on another executor

    def __init__(self, folder, *, skip: Sequence[int] = (), on_error: Callable | None = None):

        self.paths = list_images(folder) if isinstance(folder, (str, Path)) else [Path(p) for p in folder]
        self.skip, self.on_error = list(skip), on_error
        self.failed: list[str] = []  # the names of the images that could not be made
        self.done = None

    @property
    def names(self) -> list[str]:
        """Each image's name (its file's stem): what its output is called."""
        return [p.stem for p in self.paths]

    def resume(self, job, outputs) -> list[int]:
        """``--resume``: the images whose output (of ``outputs``, one per image) exists with a recipe of
        these settings and this image are skipped; an output that exists with another recipe is refused
        in one line. The images skipped."""
        self.skip = done_before(job, self.paths, outputs)
        return self.skip

    def runs(self, job, executor=None, callback: Callable | None = None) -> Iterator[object]:
        """Each picture made (:class:`~dreamstyle.drive.made.FrameDone`, with its recipe) as its batch
        comes back from ``executor`` (default: the settings' ``--executor``), then how that batch
        ended (:class:`Ended`). ``callback`` sees each engine step of the batches made here. The
        images are scanned now (each one that cannot be read told), before the iterator starts."""

        s = job.settings
        refuse_set(s, "folder")
        paths = self.paths
        sizes = _scan(job, paths, set(self.skip), self._tell)
        work = FolderWork(job, paths, sizes, callback)
        tasks = _chunks(sizes, 1 if s.preserve_color else s.batch)
        self.done = Collected(len(paths), None)
        executor = executor or executor_for(s.executor, s.workers)
        return self._finished(job, work, tasks, executor.run(work, tasks))

    def _finished(self, job, work, tasks, running) -> Iterator[object]:
        try:
            for finished in running:
                if finished.error:
                    for i in tasks[finished.index]:
                        self._tell(work.paths[i], finished.error)
                    continue
                yield from _take_batches(job, work, self.done, finished)
        finally:
            running.close()  # the executor's workers stop now (what finished is kept)

    def result(self, stopped: Reason | None, fault: str = ""):
        """What the run made (:class:`~dreamstyle.drive.made.SequenceResult`), by the images' order."""
        done = self.done if self.done is not None else Collected(len(self.paths), None)
        done.in_order()
        return done.result(stopped, fault, len(self.paths), failed=self.failed)

    def _tell(self, path: Path, line: str) -> None:
        if self.on_error is None:
            raise ImageError(line)
        self.failed.append(path.name)
        self.on_error(path.name, line)


def _scan(job, paths, skip: set, tell) -> list:
    """Each image's output size, checked before any work (None: skipped, or told to ``tell``)."""
    sizes = []
    for i, path in enumerate(paths):
        if i in skip:
            sizes.append(None)
            continue
        try:
            img = job.load(path)
            wh = fit_size(img.size, job.settings.size)
            job.check_item(Item(None, wh, source_size=img.size), img.size)
        except ImageError as exc:
            tell(path, str(exc))
            wh = None
        sizes.append(wh)
    return sizes


def _chunks(sizes, batch: int) -> list[list[int]]:
    """The images to make, same output sizes together ``batch`` at a time, in the order of their first."""
    groups: dict[tuple, list[int]] = {}
    for i, wh in enumerate(sizes):
        if wh is not None:
            groups.setdefault(wh, []).append(i)
    return sorted(
        (idx[k : k + batch] for idx in groups.values() for k in range(0, len(idx), batch)), key=lambda chunk: chunk[0]
    )


def _take_batches(job, work, done, finished) -> Iterator[object]:
    """The batches of one finished task (one, or its halves where memory ran out): each picture into
    ``done`` and yielded, then how the task ended (:class:`Ended`)."""
    paths = work.paths
    for chunk, result, stop, fault in finished.value:
        if result is None or (stop is not None and stop is not Reason.DIVERGED):
            yield Ended(stop, fault)
            return
        tag = {"image": paths[chunk[0]].name}
        if len(chunk) > 1:
            tag["images"] = [paths[i].name for i in chunk]
        recipes = [image_recipe(job, result.recipe, paths[i]) for i in chunk]
        yield from done.each(result, chunk, [paths[i].stem for i in chunk], recipes, tag, finished.worker)
        if stop is not None:
            yield Ended(stop, fault)
            return
    yield Ended()


def image_recipe(job, recipe: dict, path: Path) -> dict:
    """The recipe of a folder's image: the run's, naming the image (and its SHA-256) as its input."""
    return {
        **recipe,
        job.source_key: plain(str(path), job.recipe_paths, files=True),
        "inputs": {**recipe.get("inputs", {}), path.name: file_hash(path)},
    }


def done_before(job, paths, outputs) -> list[int]:
    """``--resume``: the images whose output exists with a recipe of these settings and this image
    (to skip); an output that exists with another recipe is refused in one line."""

    base, ignore = expected_recipe(job.settings, job.recipe_paths)
    skip = []
    for i, (path, output) in enumerate(zip(paths, outputs)):
        same = made_with(output, image_recipe(job, base, Path(path)), ignore)
        if same is False:
            raise OutputError(
                f"{output} exists but was not made with these settings from {Path(path).name}; "
                "pass --overwrite to replace it"
            )
        if same:
            skip.append(i)
    return skip


class FolderWork:
    """What a worker needs to make a folder's images (``dreamstyle.executors``): in this process the
    driver's job; on another, a job built there from the settings, the input files as bytes."""

    def __init__(self, job, paths, sizes, callback=None):
        self.job, self.paths, self.sizes, self.callback = job, list(paths), sizes, callback
        self.kind, self.settings, self.recipe_paths = (
            job.settings.KIND,
            job.settings.replace(seed=job.seed),
            job.recipe_paths,
        )
        self.files: dict = {}
        self.back: dict = {}

    @property
    def device(self):
        return self.settings.device

    def __getstate__(self):  # what travels: no job, no callback; the input files as bytes

        state = {**self.__dict__, "job": None, "callback": None}
        state["files"] = pack_inputs(self.settings)
        return state

    def open(self):
        if self.job is None:
            settings, self.back = unpack_inputs(self.settings, self.files)
            self.job = make_job(self.kind, settings, recipe_paths=self.recipe_paths)
        return self

    def ship(self, chunk):
        """A task as it travels: the batch's indices and each image's bytes."""
        return chunk, [self.paths[i].read_bytes() for i in chunk]

    def __call__(self, task):
        """One batch: ``[(indices, result, stop, fault)]`` (its halves, where memory ran out)."""
        chunk, data = (task, None) if isinstance(task, list) else task
        images = _load(self.job, self.paths, chunk, data)
        out, order = [], [chunk]
        while order:
            part = order.pop(0)
            item = _image_item(self.job, images, self.sizes, self.paths, part, len(self.paths))
            result, stop, fault = runner.attempt(self.job, item, self.callback)
            if stop is Reason.OUT_OF_MEMORY and len(part) > 1:  # --batch where memory allows: split it
                order[:0] = [part[: len(part) // 2], part[len(part) // 2 :]]
                continue
            if result is not None and self.back:
                result.recipe = relocated(result.recipe, self.back)
            out.append((part, result, stop, fault))
            if result is None or (stop is not None and stop is not Reason.DIVERGED):
                break
        return out


def _load(job, paths, chunk, data) -> dict:
    """The images of ``chunk``: from their files, or from the bytes they were sent as (each written to
    a temporary file of its own name, so it is read exactly as the file is)."""
    if data is None:
        return {i: job.load(paths[i]) for i in chunk}

    with tempfile.TemporaryDirectory(prefix="dreamstyle-item-") as tmp:
        out = {}
        for k, i in enumerate(chunk):
            local = Path(tmp) / paths[i].name
            local.write_bytes(data[k])
            out[i] = job.load(local)
        return out


def _image_item(job, images, sizes, paths, chunk, n) -> Item:
    """The item of images ``chunk`` (``images``: index -> PIL image)."""
    label = f"image {chunk[0] + 1}/{n}" if len(chunk) == 1 else f"images {', '.join(str(i + 1) for i in chunk)}/{n}"
    content = torch.cat([to_tensor(images[i], sizes[i]) for i in chunk]).to(job.device)
    if job.settings.preserve_color and hasattr(job, "set_color_reference"):
        job.set_color_reference(content)
    alpha = alphas([images[i] for i in chunk], sizes[chunk[0]], job.device)  # a chunk has one size
    return Item(
        content,
        sizes[chunk[0]],
        label=label,
        source=str(paths[chunk[0]]),
        source_size=images[chunk[0]].size,
        alpha=alpha,
    )
