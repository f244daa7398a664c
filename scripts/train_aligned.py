"""Build the last two stages of the lineage from models/tiny-sft: models/tiny-rlhf and models/tiny-dpo.

- `rlhf`: the RLHF page's default pipeline: the bundled reward model trained on the unbiased shipped pairs
  (llmlab/reward.py, loaded from models/reward-models/ or trained once), then online RL against it at the
  default settings (`--algorithm rloo`, the default: trl's RLOOTrainer; `ppo`: the project's PPO, llmlab/ppo.py).
- `dpo`: the DPO page's default live run: trl's DPOTrainer on the shipped preference pairs (llmlab/dpo.py).

Each model is then scored the way the pages score policies (llmlab/policy_eval.py): 4 answers sampled for each
of the 96 questions the preference pairs ask and of the 24 unseen ones, their correctness and KL to tiny-sft. Deterministic given --seed (same
machine, same thread count); about a minute each on 2 CPU cores. Writes the model and tokenizer
(`save_pretrained`), `history.json` (settings, metrics per step, the evaluation) and `MODEL_CARD.md`.

    python scripts/train_aligned.py rlhf          # -> models/tiny-rlhf
    python scripts/train_aligned.py dpo           # -> models/tiny-dpo
    python scripts/train_aligned.py dpo --out /tmp/quick-dpo --seed 1
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llmlab.threadenv import set_thread_env  # noqa: E402

set_thread_env()  # before torch loads

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from llmlab import dpo, policy_eval, preferences, reward, rlhf  # noqa: E402
from llmlab.modeling import LoadedModel, load_model  # noqa: E402
from llmlab.nexttoken import greedy_continuation  # noqa: E402

PROBES = ("What is the capital of France?", "Which language do people speak in Chile?")


def train_rlhf(start: LoadedModel, seed: int, algorithm: str):
    """The RLHF page's defaults: the unbiased reward model, then online RL; returns (policy, settings, metrics)."""
    rm = reward.load_or_train_reward_model(start, reward.RewardRunConfig())
    if algorithm == "ppo":
        from llmlab import ppo

        cfg = ppo.PPOConfig(seed=seed)
        run = ppo.run_ppo(start, rm, cfg)
    else:
        cfg = rlhf.RLRunConfig(seed=seed, algorithm=algorithm.upper())
        run = rlhf.run_rl(start, rm, cfg)
    settings = {"reward model": dataclasses.asdict(rm.config), algorithm: dataclasses.asdict(cfg)}
    return run.policy, settings, run.history


def train_dpo(start: LoadedModel, seed: int):
    """The DPO page's default live run on the shipped pairs; returns (policy, settings, metrics)."""
    settings = dpo.DPOSettings(seed=seed)
    run = dpo.train_dpo(start, preferences.preference_pairs(split="train"), settings)
    return run.policy, {"dpo": dataclasses.asdict(settings)}, run.metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("rlhf", "dpo"))
    parser.add_argument("--start", default="tiny-sft")
    parser.add_argument("--out", default=None, help="default: models/tiny-<stage>")
    parser.add_argument("--seed", type=int, default=0)
    # RLOO builds the bundled model: measured with seed 0, it took the right answers 85.4% -> 87.0% (unseen questions
    # 99.0% -> 99.0%), where PPO at its defaults went 85.4% -> 84.1% (unseen 99.0% -> 92.7%) while raising the score.
    parser.add_argument("--algorithm", choices=("ppo", "rloo", "grpo"), default="rloo", help="rlhf only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()

    start = load_model(args.start, "cpu")
    if args.stage == "rlhf":
        policy, settings, history = train_rlhf(start, args.seed, args.algorithm)
    else:
        policy, settings, history = train_dpo(start, args.seed)
    train_s = time.perf_counter() - started
    report, unseen = (
        policy_eval.compare_on(
            split,
            policy,
            start.model,
            start.tokenizer,
            preferences.preference_pairs(split=split),
            preferences.true_reward,
            asked=preferences.asked(split),
        )
        for split in ("test", "unseen")
    )
    probes = {}
    for question in PROBES:
        probes[question] = greedy_continuation(policy, start.tokenizer, preferences.chat_prompt(question), 24).strip()
    print(f"right answers {report.reward_before:.1%} -> {report.reward_after:.1%}, KL {report.kl:.3f} nats")
    print(f"unseen questions: {unseen.reward_before:.1%} -> {unseen.reward_after:.1%}")
    out = Path(args.out or f"models/tiny-{args.stage}")
    out.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(out)
    start.tokenizer.save_pretrained(out)
    summary = {
        "stage": args.stage,
        "start": args.start,
        "seed": args.seed,
        "algorithm": args.algorithm if args.stage == "rlhf" else "dpo",
        "settings": settings,
        "history": history,
        "train_seconds": round(train_s, 1),
        "held_out": dataclasses.asdict(report),
        "unseen": dataclasses.asdict(unseen),
        "probes": probes,
    }
    (out / "history.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False, default=str))
    (out / "MODEL_CARD.md").write_text(model_card(summary, out.name))
    print(f"saved {out} in {time.perf_counter() - started:.0f} s")


def model_card(s: dict, name: str) -> str:
    h, u = s["held_out"], s["unseen"]
    if s["stage"] == "rlhf":
        how = (
            f"the RLHF page's pipeline: the bundled reward model trained on the unbiased shipped pairs, then online "
            f"RL against it ({s['algorithm'].upper()}; settings below). RLOO rather than the page's default PPO: "
            "with seed 0, RLOO raised the share of right answers and PPO at its defaults did not (see "
            "scripts/train_aligned.py)"
        )
        flags = f" --algorithm {s['algorithm']}"
    else:
        how = "the DPO page's default live run: trl's `DPOTrainer` on the shipped preference pairs (settings below)"
        flags = ""
    probes = "\n".join(f'| probe | "{q}" → "{a}" |' for q, a in s["probes"].items())
    settings = "\n".join(
        f"| {stage} settings | `{json.dumps(cfg, default=str)}` |" for stage, cfg in s["settings"].items()
    )
    return f"""# {name}

`{s["start"]}` after {how}: the last stage of the LLM Training Lab's lineage (tiny-base → tiny-sft → {name}).

| | |
|---|---|
| architecture | same as {s["start"]}: `GPT2LMHeadModel`, context 128, chat format `<|user|>question<|assistant|>answer<|endoftext|>` |
{settings}
| right answers | {h["reward_before"]:.1%} ({s["start"]}) → {h["reward_after"]:.1%}: 4 answers sampled for each of the 96 questions the preference pairs ask (trained on) |
| right answers, unseen questions | {u["reward_before"]:.1%} → {u["reward_after"]:.1%}: the 24 questions in no training pair (4 answers each) |
| KL to {s["start"]} | {h["kl"]:.3f} nats per answer (exact per-token KL summed along the sampled answers) |
| held-out preference accuracy | {h["accuracy_after"]:.1%} on pairs never trained on (the implicit reward β·log π/π_ref ranks the chosen answer first; 50% = chance) |
{probes}
| train time | {s["train_seconds"]} s on the machine that built it |

Rebuild (deterministic for a given seed, machine and thread count):

    python scripts/train_aligned.py {s["stage"]} --start {s["start"]} --out models/{name} --seed {s["seed"]}{flags}
"""


if __name__ == "__main__":
    main()
