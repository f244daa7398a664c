"""Stacked bias: the tab's default measurement (PPO against the biased reward model at β = 0 and β = 1, 25 steps
each, the held-out answers, then every stage on the common scale), as one Job, timed. Target ≤ 60 s on 2 cores
(the issue's bar; the tab aims at ≤ 30 s).

The machine is often shared: the row gives the wall time, the load average, and the process's CPU seconds (CPU-s / 2
is about the wall time on a quiet 2-core machine).

    python -m bench --no-write --only bench_amplification
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
from llmlab import amplification, reward  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402
from ui.demos.rlhf.amplification import AmplificationSettings  # noqa: E402


def run() -> list[Row]:
    torch.set_num_threads(2)
    sft = load_model("tiny-sft", "cpu")
    cfg = AmplificationSettings().config()  # the tab's default
    rm = reward.load_or_train_reward_model(sft, reward.RewardRunConfig(biased=cfg.biased))
    job = Job("bench-amplification", amplification.amplification_work(sft, rm, cfg))
    begin, cpu = time.perf_counter(), time.process_time()
    job.start().join()
    seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    load = os.getloadavg()[0]
    if job.error:
        raise RuntimeError(job.error)
    chain = " → ".join(f"{s.preference:.0%}" for s in job.result.stages)
    return [
        Row(
            f"Stacked bias tab, default run (PPO at β = {', '.join(f'{b:g}' for b in cfg.betas)}, {cfg.steps} steps)",
            "<= 60 s",
            f"{seconds:.1f} s wall at load {load:.1f}, {cpu:.1f} CPU-s (P(longer preferred): {chain})",
            ok=seconds <= 60,
        )
    ]


if __name__ == "__main__":
    print_table(run(), "Stacked bias")
