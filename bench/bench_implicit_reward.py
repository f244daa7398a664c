"""DPO card Q1, "secretly a reward model": tiny-dpo's implicit reward β·log π/π_ref against the bundled reward
model on the 321 held-out pairs (llmlab/implicit_reward.py), as the DPO vs RLHF tab computes it.

- Load: tiny-dpo, tiny-sft and the bundled reward model (the server has them warm; a cold process pays this once).
- Compare: both log-probs of 642 answers under two models and 642 reward-model scores. Target <= 30 s on 2 cores
  (the issue's bar: 60 s); read-only on shared models, so it should take seconds.
- The effect, for the record: Pearson r, Spearman ρ and the pairwise agreement.

    python -m bench --only bench_implicit_reward --no-write
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
from llmlab import implicit_reward, preferences, reward  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402


def run() -> list[Row]:
    torch.set_num_threads(2)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    policy, reference = load_model("tiny-dpo", "cpu"), load_model("tiny-sft", "cpu")
    rm = reward.load_or_train_reward_model(reference, reward.RewardRunConfig())
    load_s = time.perf_counter() - start
    held_out = {split: preferences.preference_pairs(seed=0, split=split) for split in ("test", "unseen")}
    start = time.perf_counter()
    report = implicit_reward.compare(
        policy.model, reference.model, reference.tokenizer, rm.model, held_out, implicit_reward.trained_beta()
    )
    compare_s = time.perf_counter() - start
    load = f"{load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end"
    return [
        Row("implicit reward: load tiny-dpo, tiny-sft, reward model (cold process)", "", f"{load_s:.1f} s"),
        Row(
            f"implicit reward vs RM on {report.n_pairs} held-out pairs (DPO vs RLHF tab)",
            "<= 30 s",
            f"{compare_s:.1f} s",
            ok=compare_s <= 30,
        ),
        Row(
            "implicit reward vs RM: Pearson r / Spearman ρ / pairwise agreement",
            "r > 0, agreement > 50%",
            f"{report.pearson:.2f} / {report.spearman:.2f} / {report.agreement:.1%}",
            ok=report.pearson > 0 and report.agreement > 0.5,
        ),
        Row("machine load average (1 min), for reading the rows above", "", load),
    ]


if __name__ == "__main__":
    print_table(run(), "DPO: implicit reward vs reward model")
