"""Alignment that aligns (issue 19): does preference training make tiny-sft more correct on its own questions?

For 3 seeds, with the page defaults and the shipped (on-policy, unbiased) pairs: the share of right answers
sampled for all 96 questions (4 answers each), for the start model, after the default live DPO run, after each
β ≤ 0.1 of the β sweep (150 steps), and after the default RLHF pipeline (reward model, then RLOO at the default
KL coefficient); each with its KL to the start model. Then the contrast: the same pipeline with the biased
labeller (longer wins), where the proxy reward (the biased reward model's score) should rise while correctness
falls (both measured on answers sampled for the same 96 questions). Target: every default run above the start,
on every seed; the biased RLHF run below it, its proxy reward above.

    python -m bench.bench_alignment              # ~6 minutes on 2 cores
    python -m bench.bench_alignment --seeds 0    # one seed
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import argparse  # noqa: E402
import statistics  # noqa: E402
from dataclasses import replace  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, print_table  # noqa: E402
from llmlab import dpo, dpo_experiments, policy_eval, preferences, reward, rlhf  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402
from llmlab.nexttoken import sample_answers  # noqa: E402

SWEEP_UP_TO_DEFAULT = [b for b in dpo.SWEEP_BETAS if b <= dpo.DPOSettings().beta]


def proxy_score(policy, start, rm, asked, samples: int = 4) -> float:
    """The reward model's mean score of answers sampled from `policy` for the asked questions (4 each)."""
    ids = [start.tokenizer(row["prompt"], add_special_tokens=False)["input_ids"] for row in asked]
    prompts, answers = [], []
    for seed in range(samples):
        for row, answer in zip(asked, sample_answers(policy, start.tokenizer, ids, seed=seed), strict=True):
            prompts.append(row["prompt"])
            answers.append(start.tokenizer.decode(answer, skip_special_tokens=True))
    return float(reward.score(rm.model, rm.tokenizer, prompts, answers).mean())


def measure_seed(start, seed: int) -> dict[str, tuple[float, float]]:
    """name -> (right answers, KL in nats per answer) for one seed; "start" has KL 0. Extra keys carry the
    biased run's proxy reward before and after."""
    train, heldout = preferences.preference_pairs(split="train"), preferences.preference_pairs(split="test")
    asked, truth = preferences.asked("test"), preferences.true_reward
    out: dict[str, tuple[float, float]] = {}

    def scored(name: str, policy) -> None:
        report = policy_eval.compare_on(name, policy, start.model, start.tokenizer, heldout, truth, asked=asked)
        out.setdefault("start", (report.reward_before, 0.0))
        out[name] = (report.reward_after, report.kl)

    live = dpo.DPOSettings(seed=seed)
    outcome = Job("bench", dpo_experiments.dpo_work(start, train, heldout, live, truth, asked=asked)).start()
    outcome.join()
    assert outcome.error is None, outcome.error
    scored("DPO, the default live run", outcome.result.run.policy)
    sweep = replace(live, steps=150, batch_size=dpo_experiments.SWEEP_BATCH_SIZE)
    for beta in SWEEP_UP_TO_DEFAULT:
        scored(f"DPO sweep, β = {beta:g}", dpo.train_dpo(start, train, replace(sweep, beta=beta)).policy)
    for biased in (False, True):
        rm = reward.train_reward_model(start, reward.RewardRunConfig(seed=seed, biased=biased))
        run = rlhf.run_rl(start, rm, rlhf.RLRunConfig(seed=seed))
        name = "RLHF, biased labeller" if biased else "RLHF, the default pipeline"
        scored(name, run.policy)
        if biased:
            out["biased proxy"] = (
                proxy_score(start.model, start, rm, asked),
                proxy_score(run.policy, start, rm, asked),
            )
    return out


def run(seeds: tuple[int, ...] = (0, 1, 2)) -> list[Row]:
    torch.set_num_threads(2)
    start = load_model("tiny-sft", "cpu")
    results = [measure_seed(start, seed) for seed in seeds]
    rows = []
    names = [n for n in results[0] if n not in ("start", "biased proxy")]
    starts = [r["start"][0] for r in results]
    rows.append(Row("right answers, tiny-sft (start)", "", ", ".join(f"{s:.0%}" for s in starts)))
    for name in names:
        after = [r[name][0] for r in results]
        kls = [r[name][1] for r in results]
        biased = "biased" in name
        ok = all((a < s) if biased else (a > s) for a, s in zip(after, starts, strict=True))
        measured = ", ".join(f"{a:.0%} (KL {k:.2f})" for a, k in zip(after, kls, strict=True))
        target = "below the start, every seed" if biased else "above the start, every seed"
        gain = statistics.mean(a - s for a, s in zip(after, starts, strict=True))
        rows.append(Row(f"right answers after {name}", target, measured, f"{100 * gain:+.1f} points", ok))
    proxy = [r["biased proxy"] for r in results]
    rows.append(
        Row(
            "biased RLHF: the biased reward model's mean score of answers sampled for the 96 questions, start -> after",
            "rises",
            ", ".join(f"{a:.2f} -> {b:.2f}" for a, b in proxy),
            ok=all(b > a for a, b in proxy),
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print_table(run(tuple(args.seeds)), "Alignment: right answers before and after preference training")


if __name__ == "__main__":
    main()
