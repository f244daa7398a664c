"""RLHF algorithms (issue 16): PPO's default run, the PPO / RLOO / GRPO comparison, reward hacking with the biased
reward model, and the best-of-n (over-optimisation) curve.

- PPO: `ppo.run_ppo` with the page's defaults (`PPOConfig()`), tiny-sft and the bundled unbiased reward model.
  Target ≤ 30 s on 2 cores.
- The comparison: `rl_algorithms.comparison_work` at its defaults (`Comparison()`), run through a `Job` as the page
  runs it (PPO, RLOO, GRPO one after another, then the advantages view). Target ≤ 90 s in all; each algorithm's
  time and its end reward, correctness and KL (`rl_algorithms.summary_rows`) are printed beside it.
- Reward hacking: with the biased reward model (longer answers win), for seeds 0, 1, 2, PPO at β = 0 and at the
  default β; each policy (and tiny-sft once) answers the 24 held-out questions (`rlhf.held_out_answers`, 8 answers
  each). Target: on every seed, the β = 0 policy has a higher reward-model score, a lower share of right answers and
  longer answers than the default-β policy.
- Best-of-n: `overopt.sample_pool` (24 questions × 64 answers, unbiased reward model) + `best_of_n_curve` + the two
  `fit_bon` fits, as the page draws them. Target ≤ 5 s cold (the first call); the redraw with the pool cached (curve
  and fits only) is timed too.

    python -m bench.bench_rlhf_algorithms    # ~5 minutes on 2 cores
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import time  # noqa: E402

import torch  # noqa: E402

from bench.report import Row, p50_ms, print_table  # noqa: E402
from llmlab import overopt, ppo, rl_algorithms, rlhf  # noqa: E402
from llmlab.jobs import Job  # noqa: E402
from llmlab.modeling import load_model  # noqa: E402
from llmlab.reward import RewardRunConfig, load_or_train_reward_model  # noqa: E402

SEEDS = (0, 1, 2)


def end_state(history) -> str:
    end = rlhf.final_metrics(history)
    return f"reward {end['rewards/judge/mean']:.2f}, correct {end['true_reward']:.0%}, KL {end['kl_seq']:.2f}"


def held_out_text(report: rlhf.HeldOutAnswers) -> str:
    return f"score {report.score:.2f}, correct {report.correct:.0%}, {report.length:.1f} tokens"


def ppo_default(sft, rm) -> list[Row]:
    cfg = ppo.PPOConfig()
    start = time.perf_counter()
    run = ppo.run_ppo(sft, rm, cfg)
    seconds = time.perf_counter() - start
    return [
        Row(
            f"PPO default run ({cfg.max_steps} batches of {cfg.prompts_per_step}×{cfg.num_generations} answers, "
            f"β = {cfg.beta:g}, {cfg.ppo_epochs} epochs × {cfg.mini_batches} mini-batches)",
            "<= 30 s",
            f"{seconds:.1f} s ({end_state(run.history)})",
            ok=seconds <= 30,
        )
    ]


def comparison(sft, rm) -> list[Row]:
    settings = rl_algorithms.Comparison()
    job = Job("bench-rl-algorithms", rl_algorithms.comparison_work(sft, rm, settings))
    start = time.perf_counter()
    job.start().join()
    seconds = time.perf_counter() - start
    if job.error:
        raise RuntimeError(job.error)
    rows = [
        Row(
            f"PPO, RLOO and GRPO comparison at its defaults ({settings.steps} steps each, β = {settings.beta:g}, "
            "through a Job, advantages view included)",
            "<= 90 s",
            f"{seconds:.1f} s",
            ok=seconds <= 90,
        )
    ]
    for summary in rl_algorithms.summary_rows(job.snapshot(), job.result):
        rows.append(
            Row(
                f"  {summary['algorithm']} ({summary['steps']} steps): wall time; end reward, correct, KL (last 5 steps)",
                "",
                f"{summary['wall time (s)']:.1f} s; reward {summary['reward (last 5 steps)']:.2f}, "
                f"correct {summary['correct']}, KL {summary['KL (nats/answer)']:.2f}",
            )
        )
    return rows


def reward_hacking(sft, seeds: tuple[int, ...] = SEEDS) -> list[Row]:
    biased = load_or_train_reward_model(sft, RewardRunConfig(biased=True))
    default_beta = ppo.PPOConfig().beta

    def held_out(name: str, policy) -> rlhf.HeldOutAnswers:
        return rlhf.held_out_answers(name, policy, sft.tokenizer, biased.model)

    base = held_out("tiny-sft", sft.model)
    rows = [Row("reward hacking (biased RM), held-out answers of tiny-sft", "", held_out_text(base))]
    every = []
    for seed in seeds:
        free = held_out("β = 0", ppo.run_ppo(sft, biased, ppo.PPOConfig(beta=0.0, seed=seed)).policy)
        leashed = held_out(f"β = {default_beta:g}", ppo.run_ppo(sft, biased, ppo.PPOConfig(seed=seed)).policy)
        checks = {
            "score higher": free.score > leashed.score,
            "correct lower": free.correct < leashed.correct,
            "longer": free.length > leashed.length,
        }
        every.append(all(checks.values()))
        rows.append(
            Row(
                f"  seed {seed}: PPO β = 0 | PPO β = {default_beta:g}",
                "",
                f"{held_out_text(free)} | {held_out_text(leashed)}",
                ratio="β = 0 vs default: " + ", ".join(f"{k} {'✓' if v else '✗'}" for k, v in checks.items()),
            )
        )
    rows.append(
        Row(
            f"reward hacking: PPO β = 0 vs β = {default_beta:g} with the biased RM, seeds {', '.join(map(str, seeds))}",
            "β = 0: higher score, lower correct, longer; every seed",
            f"{sum(every)} of {len(seeds)} seeds",
            ok=all(every),
        )
    )
    return rows


def best_of_n(sft, rm) -> list[Row]:
    def draw(pool: overopt.Pool):
        curve = overopt.best_of_n_curve(pool)
        return curve, overopt.fit_bon(curve.d, curve.proxy), overopt.fit_bon(curve.d, curve.true)

    questions = overopt.default_questions()
    start = time.perf_counter()
    pool = overopt.sample_pool(sft, rm.model, questions)
    curve, _, fit_true = draw(pool)
    cold = time.perf_counter() - start
    warm_ms = p50_ms(lambda: draw(pool), repeats=20)
    peak = "none" if fit_true.peak_d is None else f"d* = {fit_true.peak_d:.2f}"
    return [
        Row(
            f"best-of-n curve, cold: sample + score {len(questions)}×{pool.n_max} answers, curve, fits (n ≤ 64)",
            "<= 5 s",
            f"{cold:.2f} s (true-reward fit peak {peak})",
            ok=cold <= 5,
        ),
        Row("best-of-n curve, pool cached: curve + fits, p50", "<= 5 s", f"{warm_ms:.1f} ms", ok=warm_ms <= 5000),
    ]


def run() -> list[Row]:
    torch.set_num_threads(2)
    sft = load_model("tiny-sft", "cpu")
    rm = load_or_train_reward_model(sft, RewardRunConfig())
    rows = ppo_default(sft, rm)
    rows += comparison(sft, rm)
    rows += reward_hacking(sft)
    rows += best_of_n(sft, rm)
    return rows


def main() -> None:
    print_table(run(), "RLHF algorithms: PPO, RLOO, GRPO, reward hacking, best-of-n")


if __name__ == "__main__":
    main()
