"""CPU time of a process tree, from /proc: what a run cost the router and its environments,
whatever else the machine runs meanwhile (events/s on shared cores moves by ±20% or more).

A process's figure includes what its reaped children used (`cutime`, `cstime`), so the tree's
total at any moment counts every CPU second it has used since its root started, whichever of
its processes has exited since (the router reaps its environments, their children included,
as their subreaper): the difference of two totals is the CPU the tree used in between.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def process_seconds(pid: int) -> float:
    """User + system CPU of `pid` and of its reaped children; 0 if it has gone."""
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text.rsplit(")", 1)[1].split()  # after the command, which may hold spaces
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        return (utime + stime + cutime + cstime) / TICKS
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and every process below it (see the module's doc)."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += process_seconds(pid)
        todo += children(pid)
    return total


class CpuClock:
    """CPU used by a process tree between `start()` and `seconds()`."""

    def __init__(self, root: int) -> None:
        self._root = root
        self._started: float | None = None

    def start(self) -> None:
        self._started = tree_seconds(self._root)

    def seconds(self) -> float:
        if self._started is None:
            raise RuntimeError("the clock was not started")
        return tree_seconds(self._root) - self._started
