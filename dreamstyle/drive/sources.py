"""Sources: what a job runs over, as items (:class:`~dreamstyle.runner.Item`)."""

from __future__ import annotations

from collections.abc import Iterator

from ..runner import Item


class Still:
    """One picture: the job's still input (its content, its input, or nothing for a texture), one item.
    ``item(job)`` is made once, so its stages can be known before the run (a progress bar)."""

    def __init__(self):
        self._item: Item | None = None

    def item(self, job) -> Item:
        if self._item is None:
            self._item = job.still_item()
        return self._item

    def items(self, job) -> Iterator[Item]:
        yield self.item(job)
