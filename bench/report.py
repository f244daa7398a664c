"""The benchmark table: each bench module's `run()` returns Rows; `python -m bench` prints them all.

Speed targets are checked here, never as timed assertions in tests (the machines are shared and noisy).
Ratios are measured side by side in one run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    metric: str  # what was measured, e.g. "temperature slider -> chart, p50"
    target: str  # the target, e.g. "<= 50 ms"
    measured: str  # e.g. "12.3 ms"
    ratio: str = ""  # vs the baseline measured in the same run, e.g. "1.07x plain loop"
    ok: bool | None = None  # whether the target is met (None: no target)


def p50_ms(fn: Callable[[], object], repeats: int = 20, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def print_table(rows: list[Row], title: str = "Benchmarks") -> None:
    header = ("metric", "target", "measured", "ratio", "ok")
    cells = [header] + [
        (r.metric, r.target, r.measured, r.ratio, "" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
