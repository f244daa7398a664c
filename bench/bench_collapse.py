"""Model collapse benchmark: the SFT page's "Model collapse" tab at its defaults (llmlab.collapse).

- Default run: `run_collapse(tiny-sft, CollapseConfig())`, as the tab's Start button runs it (generation 0 sampled
  and measured once, then 3 generations of sample -> SFTTrainer -> measure, self only and mixed). Target <= 60 s
  wall on 2 cores (the issue's bar; the defaults are meant for ~30 s on a quiet machine).
- trl's share: building an SFTTrainer on one generation's data (dataset preparation included), per generation.
- The effect the tab shows: distinct-2, entropy and right facts, generation 0 -> last, self only vs mixed.

One torch thread: on the shared 2-core machine (load 5-12 from other processes) two threads made one generation's
sampling 28-54 s instead of 2 s and its 30 steps 30 s instead of 4.3 s (measured 2026-12-06); one thread is also
what a tiny model's batches use well. `LLMLAB_BENCH_THREADS=2` measures the server's setting instead.

    python -m bench --only bench_collapse --no-write
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import random  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import collapse  # noqa: E402
from llmlab.collapse import MIXED, SELF_ONLY, CollapseConfig  # noqa: E402
from llmlab.modeling import load_model, trainable_copy  # noqa: E402
from llmlab.sft import make_trainer  # noqa: E402


def trainer_setup_s(loaded, result: collapse.CollapseResult) -> float:
    """Seconds to build one generation's SFTTrainer (trl's dataset preparation included), median of 3."""
    cfg = result.config
    _, real = collapse.prompt_set(cfg)
    pairs, _ = collapse.training_pairs(result.runs[SELF_ONLY][0].samples, real, 0.0, random.Random(0))
    times = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            make_trainer(trainable_copy(loaded), loaded.tokenizer, pairs, cfg.sft(1), tmp)
            times.append(time.perf_counter() - start)
    return sorted(times)[1]


def run() -> list[Row]:
    threads = int(os.environ.get("LLMLAB_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    loaded = load_model("tiny-sft", "cpu")
    cfg = CollapseConfig()
    start, cpu = time.perf_counter(), time.process_time()
    result = collapse.run_collapse(loaded, cfg)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    own, mixed = result.runs[SELF_ONLY], result.runs[MIXED]
    rows = [
        Row(
            f"model collapse default run (T={cfg.temperature:g}, {cfg.generations} generations x 2 runs, "
            f"{cfg.prompts} prompts x {cfg.answers_per_prompt} answers, {cfg.max_steps} steps each, {threads} torch thread)",
            "<= 60 s",
            f"{wall:.1f} s wall, {cpu:.1f} s CPU",
            f"load avg {os.getloadavg()[0]:.1f}",
            wall <= 60,
        )
    ]
    setup = trainer_setup_s(loaded, result)
    per_generation = sum(g.wall_s for g in own[1:] + mixed[1:]) / max(1, len(own) + len(mixed) - 2)
    rows.append(
        Row(
            "SFTTrainer set-up per generation (trl's dataset preparation) vs a whole generation",
            "",
            f"{setup:.2f} s of {per_generation:.1f} s",
            f"{setup / per_generation:.0%} of a generation",
        )
    )
    rows.append(
        Row(
            "distinct-2 of the sampled answers, generation 0 -> last: self only / mixed",
            "self only falls, mixed less",
            f"{own[0].distinct_2:.3f} -> {own[-1].distinct_2:.3f} / {mixed[-1].distinct_2:.3f}",
            "",
            own[-1].distinct_2 < own[0].distinct_2 and mixed[-1].distinct_2 > own[-1].distinct_2,
        )
    )
    rows.append(
        Row(
            "next-token entropy along fixed real answers (nats/token): self only / mixed",
            "self only falls, mixed less",
            f"{own[0].entropy:.3f} -> {own[-1].entropy:.3f} / {mixed[-1].entropy:.3f}",
            "",
            own[-1].entropy < own[0].entropy and mixed[-1].entropy > own[-1].entropy,
        )
    )
    rows.append(
        Row(
            "right facts among sampled fact answers: self only / mixed",
            "",
            f"{own[0].correct:.0%} -> {own[-1].correct:.0%} / {mixed[-1].correct:.0%}",
        )
    )
    return rows


if __name__ == "__main__":
    print_table(run(), "Model collapse")
