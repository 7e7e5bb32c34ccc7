"""An opt-in memory diagnostic: with ``AUTHSEC_TRACEMALLOC_DIR`` set, a process traces its allocations and, on
each ``SIGUSR2``, writes the lines whose allocations grew most since its first ``SIGUSR2`` (docs/benchmarks.md,
"Memory"). Off by default: tracing allocations costs every allocation, so it is a diagnostic, never run in
production. Nothing is done per request; the work happens in the signal handler.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = int(os.environ.get("AUTHSEC_TRACEMALLOC_FRAMES", "4"))  # traceback depth kept per allocation
TOP = 40

_baseline: tracemalloc.Snapshot | None = None
_lock = threading.Lock()


def install() -> None:
    """Start tracing and handle SIGUSR2, when ``AUTHSEC_TRACEMALLOC_DIR`` is set (call once, early)."""
    directory = os.environ.get("AUTHSEC_TRACEMALLOC_DIR", "")
    if not directory or tracemalloc.is_tracing():
        return
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR2, lambda signum, frame: dump(Path(directory), frame))


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(
        (
            tracemalloc.Filter(False, tracemalloc.__file__),
            tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
            tracemalloc.Filter(False, "<unknown>"),
        )
    )


def dump(directory: Path, frame: FrameType | None = None) -> Path | None:
    """The first call keeps a baseline; each later call writes the top growth since it, by line and by
    traceback, to ``<directory>/tracemalloc-<pid>-<time>.txt``."""
    global _baseline
    with _lock:
        snapshot = _snapshot()
        if _baseline is None:
            _baseline = snapshot
            return None
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"tracemalloc-{os.getpid()}-{int(time.time())}.txt"
        traced, peak = tracemalloc.get_traced_memory()
        lines = [f"pid {os.getpid()}: traced {traced / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB)", "", "by line:"]
        lines += [str(stat) for stat in snapshot.compare_to(_baseline, "lineno")[:TOP]]
        lines += ["", "by traceback:"]
        for stat in snapshot.compare_to(_baseline, "traceback")[:15]:
            lines.append(f"{stat.size_diff / 1e6:+.2f} MB in {stat.count_diff:+d} blocks")
            lines += [f"    {line}" for line in stat.traceback.format()]
        path.write_text("\n".join(lines) + "\n")
        return path
