"""The resume protocol every probe shares: skip the items a run already stored, compute the rest
batch by batch, store each finished batch, and return the whole table.

A probe states what an item is (``key``), how a batch becomes rows (``compute``) and its columns;
:func:`collect` does the rest through the public methods of :class:`~probes.backend.store.Run`
(``finished``, ``load``, ``done_items``, ``append``, ``finish``). Without a run, nothing is stored
and the batches are concatenated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pandas as pd
from tqdm.auto import tqdm

from probes.backend.store import Run

T = TypeVar("T")


def collect(
    items: Sequence[T],
    compute: Callable[[list[T]], pd.DataFrame],
    *,
    key: Callable[[T], str],
    columns: Sequence[str],
    run: Run | None = None,
    batch_size: int = 1,
    desc: str = "",
    unit: str = "item",
    progress: bool = True,
) -> pd.DataFrame:
    """The table of ``compute`` over ``items`` in batches of ``batch_size`` (in the order given).

    With ``run``: items whose ``key`` is among the run's stored items are skipped; each batch's
    rows are stored as soon as they are computed, so an interrupted run resumes where it stopped;
    a finished run with nothing new to compute is loaded, not rewritten. The rows must carry the
    key in the run's item column (``item``). The stored items are read again, under the run's
    lock, before each batch, so a second process working on the same run is not duplicated
    (``Run.append`` also drops rows of items stored meanwhile, under the same lock)."""
    done = run.done_items() if run is not None else set()
    todo = [item for item in items if key(item) not in done]
    if run is not None and run.finished and not todo:
        return run.load()
    frames = []
    with tqdm(total=len(todo), desc=desc, unit=unit, disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            fresh = _not_stored(batch, key, run)
            if fresh:
                frame = compute(fresh)
                if run is not None:
                    run.append(frame)
                else:
                    frames.append(frame)
            bar.update(len(batch))
    if run is not None:
        return run.finish()
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns))


def _not_stored(batch: list[T], key: Callable[[T], str], run: Run | None) -> list[T]:
    """The items of ``batch`` that no process has stored yet."""
    if run is None:
        return batch
    done = run.done_items()
    return [item for item in batch if key(item) not in done]
