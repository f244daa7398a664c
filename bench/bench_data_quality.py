"""Pre-training card Q4, the Data quality tab (llmlab/dataquality.py, ui/demos/pretraining/data_quality.py).

- Default view: the saved runs (models/tiny-base/data_quality.json, every kind × 6 levels × seeds) loaded and the
  tab's three charts built; what a visitor waits for. Target <= 1 s.
- Reading the capitals (`capital_beliefs`: 40 prompts, p of the right capital, the lie, the wrong ones). Target
  <= 1 s (it ends every run).
- One noise run at the defaults (300 steps, a fresh model, its clean loss and capitals), as Start runs it three
  times (clean, 5%, your level). Target: three of them <= 60 s on 2 cores.

    python -m bench --only bench_data_quality --no-write
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import time  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import dataquality, plots  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402


def default_view() -> float:
    """Seconds to load the saved runs and build the tab's charts for the default kind."""
    start = time.perf_counter()
    saved = dataquality.load_saved_runs()
    dataquality.beliefs_figure(saved, "beliefs", 0.3)
    for metric in ("clean_loss", "p_correct"):
        points = saved.spread("random_capital", metric)
        plots.metric_vs_noise({"saved": ([p.noise for p in points], [p.mean for p in points])}, "t", "y", 0.3)
    return time.perf_counter() - start


def run() -> list[Row]:
    torch.set_num_threads(2)
    load_before = os.getloadavg()[0]
    tiny = load_model("tiny-base", "cpu")
    view_s = default_view()
    start = time.perf_counter()
    dataquality.capital_beliefs(tiny.model, tiny.tokenizer)
    beliefs_s = time.perf_counter() - start
    dataquality.noisy_corpus_ids(tiny.tokenizer, 0.0, "random_capital")  # the clean corpus is encoded once per process
    start = time.perf_counter()
    result = dataquality.noise_run(tiny.tokenizer, 0.3, dataquality.NoiseConfig(kind="repeated_lie"))
    run_s = time.perf_counter() - start
    load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    return [
        Row(
            "data quality: saved runs loaded, charts built (default view)", "<= 1 s", f"{view_s:.2f} s", ok=view_s <= 1
        ),
        Row("data quality: capital_beliefs, 40 prompts", "<= 1 s", f"{beliefs_s:.2f} s", ok=beliefs_s <= 1),
        Row(
            "data quality: one 300-step run at 30% repeated lie; Start runs 3",
            "3 runs <= 60 s",
            f"{run_s:.1f} s (x3 = {3 * run_s:.0f} s; p(lie) {result.p_lie:.2f}, p(right) {result.p_correct:.2f})",
            ok=3 * run_s <= 60,
        ),
        Row("machine load average (1 min), for reading the rows above", "", load),
    ]


if __name__ == "__main__":
    print_table(run(), "Pre-training: data quality")
