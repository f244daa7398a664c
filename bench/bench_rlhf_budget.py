"""SFT or RLHF at a small labelling budget: the tab's default comparison (64 pairs, seed 0: the start model scored,
SFT on the chosen answers, a reward model on the pairs, PPO against it, each scored on the unseen and the pairs'
questions), as one Job, timed. Target ≤ 60 s on 2 cores (the issue's bar; the tab aims at ≤ 30 s).

The machine is often shared: the row gives the wall time, the load average, and the process's CPU seconds (CPU-s / 2
is about the wall time on a quiet 2-core machine).

    python -m bench --no-write --only bench_rlhf_budget
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import os  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import rlhf_budget  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402
from ui.demos.rlhf.budget import BudgetSettings  # noqa: E402


def run() -> list[Row]:
    torch.set_num_threads(2)
    start = load_model("tiny-sft", "cpu")
    configs = BudgetSettings().configs()  # the tab's default
    job = Job("bench-budget", rlhf_budget.comparison_work(start, configs))
    begin, cpu = time.perf_counter(), time.process_time()
    job.start().join()
    seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    load = os.getloadavg()[0]
    if job.error:
        raise RuntimeError(job.error)
    (result,) = job.result
    arms = result.arms
    summary = (
        f"unseen right: start {arms['start'].unseen.correct:.0%}, SFT {arms['SFT'].unseen.correct:.0%}, RLHF "
        f"{arms['RLHF'].unseen.correct:.0%}; reward model {result.rm_accuracy:.0%} on held-out pairs"
    )
    return [
        Row(
            f"SFT or RLHF tab, default run ({result.config.pairs} pairs, seed {result.config.seed})",
            "<= 60 s",
            f"{seconds:.1f} s wall at load {load:.1f}, {cpu:.1f} CPU-s ({summary})",
            ok=seconds <= 60,
        )
    ]


if __name__ == "__main__":
    print_table(run(), "SFT or RLHF at a small budget")
