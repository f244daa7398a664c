"""Over-refusal (RLHF card, question 5): the tab's default run (safety SFT from tiny-sft, then for cautious labellers a
reward model and PPO, every model's answers sampled), as one Job, timed; then the second arm the tab offers (careful
labellers, caution 0) on the kept safety-SFT model. Target ≤ 60 s on 2 cores
(the issue's bar; the tab aims at ≤ 30 s on a quiet machine).

The machine is often shared: the row gives the wall time, the load average, and the process's CPU seconds (CPU-s / 2
is about the wall time on a quiet 2-core machine). The safety-SFT model is kept in memory after the first run (a
second Start with other labellers skips it): this measures the first, cold run.

    python -m bench --no-write --only bench_refusal
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
from llmlab import refusal  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402
from ui.demos.rlhf.refusal import RefusalSettings  # noqa: E402


def run() -> list[Row]:
    # 2 threads as on the 2-core server; LLMLAB_BENCH_THREADS=1 on a shared machine, where a 2-thread OpenMP run
    # waits at every barrier for a descheduled thread (measured at load 4: 408 CPU-s and not done after 7 minutes,
    # against ~53 s for both arms on 1 thread)
    torch.set_num_threads(int(os.environ.get("LLMLAB_BENCH_THREADS", "2")))
    start = load_model("tiny-sft", "cpu")
    configs = RefusalSettings().configs()  # the tab's default: cautious labellers (caution 1)
    job = Job("bench-refusal", refusal.refusal_work(start, configs))
    begin, cpu = time.perf_counter(), time.process_time()
    job.start().join()
    seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    load = os.getloadavg()[0]
    if job.error:
        raise RuntimeError(job.error)
    result = job.result
    before = result.before.rates
    parts = [
        f"looks-risky refusals {before['looks risky'].refusal:.0%} -> "
        + ", ".join(f"{a.policy.rates['looks risky'].refusal:.0%} (caution {a.config.caution:g})" for a in result.arms),
        f"harmless right {result.before.helpfulness:.0%} -> "
        + ", ".join(f"{a.policy.helpfulness:.0%}" for a in result.arms),
    ]
    rows = [
        Row(
            f"Over-refusal tab, default run ({len(configs)} arm, seed {configs[0].seed})",
            "<= 60 s",
            f"{seconds:.1f} s wall at load {load:.1f}, {cpu:.1f} CPU-s (safety SFT {result.sft_seconds:.1f} s; "
            + "; ".join(parts)
            + ")",
            ok=seconds <= 60,
        )
    ]
    careful = RefusalSettings(compare=True).configs()[1:]  # the second arm, from the kept safety-SFT model
    job = Job("bench-refusal-careful", refusal.refusal_work(start, careful))
    begin, cpu = time.perf_counter(), time.process_time()
    job.start().join()
    seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    if job.error:
        raise RuntimeError(job.error)
    (arm,) = job.result.arms
    rows.append(
        Row(
            "Over-refusal tab, second arm (careful labellers, caution 0)",
            "<= 60 s",
            f"{seconds:.1f} s wall at load {os.getloadavg()[0]:.1f}, {cpu:.1f} CPU-s (looks-risky refusals "
            f"{arm.policy.rates['looks risky'].refusal:.0%}; harmless right {arm.policy.helpfulness:.0%})",
            ok=seconds <= 60,
        )
    )
    return rows


if __name__ == "__main__":
    print_table(run(), "Over-refusal")
