"""RLHF speed: the KL sweep's data, the reward model's default run, the online-RL default run.

- The KL sweep: sampling and scoring a question's answers (once per question), and the data the browser redraws
  π* from at any β (ui/instant.py; bench/bench_instant.py measures the redraw in Chromium).
- Reward model: `train_reward_model` with the page's defaults (trl RewardTrainer). Target ≤ 15 s.
- Online RL: the page's default job, RLOO at the default β and at β = 0 (the default comparison), with the
  default reward model. Target ≤ 30 s.

    python -m bench.bench_rlhf
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, p50_ms, print_table  # noqa: E402
from llmlab import preferences, reward, rlhf  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import bundled_models, load_model  # noqa: E402
from ui.demos.rlhf.kl_sweep import sweep_payload  # noqa: E402
from ui.demos.rlhf.online_rl import OnlineSettings  # noqa: E402

POLICY = "tiny-sft" if "tiny-sft" in bundled_models() else "tiny-base"


def run() -> list[Row]:
    torch.set_num_threads(2)
    sft = load_model(POLICY, "cpu")
    rows = []

    start = time.perf_counter()
    rm_run = reward.train_reward_model(sft, reward.RewardRunConfig())
    rm_seconds = time.perf_counter() - start
    rows.append(
        Row(
            f"reward model default run ({rm_run.config.max_steps} steps, trl RewardTrainer)",
            "<= 15 s",
            f"{rm_seconds:.1f} s (held-out accuracy {rm_run.heldout.accuracy:.0%})",
            ok=rm_seconds <= 15,
        )
    )

    prompt = preferences.chat_prompt("Where is Mexico?")
    start = time.perf_counter()
    cands = rlhf.sample_candidates(sft.model, sft.tokenizer, rm_run.model, prompt, k=32, padded_rewrites=True)
    sample_ms = (time.perf_counter() - start) * 1000
    curve = rlhf.frontier(cands, rlhf.beta_grid(121))  # once per question (cached with the candidates)
    size_kb = len(json.dumps(sweep_payload(cands, curve)).encode()) / 1024
    ms = p50_ms(lambda: json.dumps(sweep_payload(cands, curve)), repeats=60)
    rows.append(
        Row(
            "the sweep's data for the browser (candidates + frontier) as JSON, once per question, p50",
            "",
            f"{ms:.1f} ms ({size_kb:.0f} KB)",
            ratio="a β move costs the server nothing (bench_instant)",
        )
    )
    rows.append(
        Row(
            f"first view of a question: sample + score {len(cands.texts)} answers (cached after)",
            "",
            f"{sample_ms:.0f} ms",
        )
    )

    biased = reward.train_reward_model(sft, reward.RewardRunConfig(biased=True))
    configs = OnlineSettings().configs()  # the Online RL tab's defaults: PPO at β = 1, beside β = 0
    defaults = configs[0]
    job = Job("bench-rl", rlhf.kl_comparison_work(sft, biased, configs))
    start = time.perf_counter()
    job.start().join()
    rl_seconds = time.perf_counter() - start
    if job.error:
        raise RuntimeError(job.error)
    summary = ", ".join(f"β={r.config.beta:g}: KL {rlhf.final_metrics(r.history)['kl_seq']:.2f}" for r in job.result)
    rows.append(
        Row(
            f"online RL default run (PPO, β = {defaults.beta:g} and 0, {defaults.max_steps} steps each, then the "
            "held-out answers)",
            "<= 30 s",
            f"{rl_seconds:.1f} s ({summary})",
            ok=rl_seconds <= 30,
        )
    )
    return rows


if __name__ == "__main__":
    print_table(run(), "RLHF benchmarks")
