"""Stacked bias (the RLHF card's Q4): the labellers' length bias, the reward model's, and the RL policy's, on one scale.

The scale is a Bradley–Terry probability: **how likely each stage is to prefer the longer of two answers**.

- **Labellers**: the share of the labelled training pairs (answers of different length) whose chosen answer is the
  longer one. The biased labellers (`preference_pairs(biased=True)`) pick the longer answer by rule: 100%. The
  unbiased labellers pick the correct one, which happens to be the longer about half the time.
- **Reward model**: σ(r_long − r_short), the probability its Bradley–Terry model gives the longer answer, averaged
  over held-out pairs of **equally correct** answers that differ only in length: the right answer to each of the 24
  unseen questions, plain and wrapped in polite padding ("Thank you! … Have a happy day!", three variants).
- **Policy**: the same pairs, through the reward the RL stage has implicitly learned, r̂ = log π/π_ref (DPO's
  reading of a policy: at the KL-regularised optimum π* ∝ π_ref·exp(r/β), β·log π*/π_ref = r − const). Before RL
  the policy is the SFT model, π = π_ref, so its preference is exactly 50%. The policy's own odds of writing the
  padded rather than the plain answer (σ of the raw log-probability difference) are kept too: the SFT model gives
  the padded answer hundreds of nats less, and so does the policy after RL.

The policy's behaviour (length, correctness, polite phrases of its answers to the unseen questions) comes from the
Online RL tab's machinery (`rlhf.kl_comparison_work`, `rlhf.held_out_answers`).

    result = measure(sft, biased_rm, runs)       # runs: the RL policies (rlhf.RLRun / ppo.PPORun)
    result.stages                                  # [Stage("labellers", 1.0, ...), ...]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab import rlhf
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.nexttoken import sequence_logps
from llmlab.ppo import PPOConfig
from llmlab.preferences import POLITE_OPENERS, answer_text, padded, preference_pairs, questions
from llmlab.reward import RewardRun, score

PAD_VARIANTS = len(POLITE_OPENERS)


@dataclass(frozen=True)
class LengthPair:
    """Two equally correct answers to one question: `short`, and `long`, the same answer with more padding."""

    prompt: str
    short: str
    long: str


def equal_pairs(split: str = "unseen", levels: tuple[int, int] = (0, 1)) -> list[LengthPair]:
    """The right answer to each question of `split` at two padding levels, in each padding variant (24 × 3 pairs for
    the unseen questions). Both answers are correct (`true_reward` 1); only the length differs."""
    low, high = levels
    rows = []
    for q in questions(split):
        right = answer_text(q, q.answer)
        rows += [LengthPair(q.prompt, padded(right, low, v), padded(right, high, v)) for v in range(PAD_VARIANTS)]
    return rows


def labeller_preference(rows: Sequence[dict]) -> tuple[float, int]:
    """The share of labelled pairs whose chosen answer is the longer (characters), over pairs of different length;
    and how many such pairs there are."""
    differ = [r for r in rows if len(r["chosen"]) != len(r["rejected"])]
    return (sum(len(r["chosen"]) > len(r["rejected"]) for r in differ) / max(1, len(differ)), len(differ))


def reward_margins(reward_model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[LengthPair]):
    """r(long) − r(short) per pair, score units (N,)."""
    prompts = [p.prompt for p in pairs]
    both = score(reward_model, tokenizer, prompts + prompts, [p.short for p in pairs] + [p.long for p in pairs])
    return (both[len(pairs) :] - both[: len(pairs)]).double().numpy()


def answer_logps(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[LengthPair]):
    """(log π(short), log π(long)) per pair, nats, each answer followed by the end-of-text token."""
    prompt_ids = [tokenizer(p.prompt, add_special_tokens=False)["input_ids"] for p in pairs]

    def logps(texts: list[str]) -> np.ndarray:
        answers = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
        return sequence_logps(model, prompt_ids, answers, tokenizer.pad_token_id).double().numpy()

    return logps([p.short for p in pairs]), logps([p.long for p in pairs])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(np.asarray(x, dtype=float) / 2))  # σ without overflow


@dataclass(frozen=True)
class Stage:
    """One stage's preference for the longer answer (0-1) on the common scale, and what it was measured on."""

    name: str
    preference: float  # P(longer preferred)
    margin: float  # mean r_long − r_short (score units; for a policy, nats of log π/π_ref)
    measured_on: str


@dataclass(frozen=True)
class PolicyBehaviour:
    """A policy's answers to the unseen questions (rlhf.held_out_answers) and its own odds for the padded answer."""

    name: str
    length: float  # tokens per answer
    correct: float
    padding: float  # polite phrases per answer
    writes_long: float  # mean σ(log π(long) − log π(short)): its own odds of the padded answer
    logp_gap: float  # mean log π(long) − log π(short), nats


@dataclass(frozen=True)
class Amplification:
    stages: list[Stage]
    policies: list[PolicyBehaviour]
    pairs: int  # equally correct pairs the reward model and the policies are measured on


def measure(
    sft: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_model: PreTrainedModel,
    biased: bool,
    policies: Sequence[tuple[str, PreTrainedModel]],
    behaviour: dict[str, tuple[float, float, float]],
    seed: int = 0,
) -> Amplification:
    """Every stage on the common scale. `policies`: (name, trained policy) after RL; `behaviour`: name ->
    (length, correct, padding) of its held-out answers, for the SFT model's name too."""
    pairs = equal_pairs()
    labels = "biased" if biased else "unbiased"
    share, n_labelled = labeller_preference(preference_pairs(seed, biased, "train"))
    margins = reward_margins(reward_model, tokenizer, pairs)
    stages = [
        Stage("labellers", share, float("nan"), f"{n_labelled} {labels} training pairs of different length"),
        Stage("reward model", float(sigmoid(margins).mean()), float(margins.mean()), f"{len(pairs)} equal pairs"),
    ]
    ref_short, ref_long = answer_logps(sft, tokenizer, pairs)
    rows = []
    for name, model in [(BEFORE, sft), *policies]:
        short, long = (ref_short, ref_long) if model is sft else answer_logps(model, tokenizer, pairs)
        implied = (long - ref_long) - (short - ref_short)  # r̂(long) − r̂(short), r̂ = log π/π_ref
        stages.append(Stage(f"policy: {name}", float(sigmoid(implied).mean()), float(implied.mean()),
                            f"{len(pairs)} equal pairs, r̂ = log π/π_ref"))  # fmt: skip
        length, correct, pad = behaviour.get(name, (float("nan"),) * 3)
        gap = long - short
        rows.append(PolicyBehaviour(name, length, correct, pad, float(sigmoid(gap).mean()), float(gap.mean())))
    return Amplification(stages, rows, len(pairs))


def stage_table(result: Amplification) -> list[dict]:
    return [
        {
            "stage": s.name,
            "P(longer preferred)": f"{s.preference:.1%}",
            "mean margin (score units; policy: nats)": "—" if np.isnan(s.margin) else f"{s.margin:.2f}",
            "measured on": s.measured_on,
        }
        for s in result.stages
    ]


def behaviour_table(result: Amplification) -> list[dict]:
    return [
        {
            "policy": p.name,
            "answer length (tokens)": round(p.length, 1),
            "correct": f"{p.correct:.0%}",
            "polite phrases per answer": round(p.padding, 2),
            "own odds of the padded answer": f"{p.writes_long:.1%}",
            "log π(padded) − log π(plain) (nats)": round(p.logp_gap, 1),
        }
        for p in result.policies
    ]


# -- the run: the Online RL tab's machinery against the reward model, then every stage measured -----------------

BEFORE = "SFT model (before RL)"


def after(beta: float) -> str:
    return f"after RL, β = {beta:g}"


@dataclass(frozen=True)
class AmplificationConfig:
    """One measurement: PPO runs at these β from the SFT model against the reward model, then the common scale."""

    biased: bool = True
    betas: tuple[float, ...] = (0.0, 1.0)
    steps: int = 25  # the Online RL tab's default
    seed: int = 0

    def configs(self) -> list[PPOConfig]:
        return [PPOConfig(beta=float(b), max_steps=self.steps, seed=self.seed) for b in dict.fromkeys(self.betas)]


def amplification_work(
    sft: LoadedModel, rm: RewardRun, cfg: AmplificationConfig
) -> Callable[[Job], Amplification | None]:
    """A Job's work: `rlhf.kl_comparison_work` (the Online RL tab's runs, one per β, and each policy's answers to
    the held-out questions as job notes), then `measure` on its policies. Stopped early: None."""
    configs = cfg.configs()
    rl = rlhf.kl_comparison_work(sft, rm, configs)

    def work(job: Job) -> Amplification | None:
        runs = rl(job)
        if job.should_stop or len(runs) < len(configs):
            return None
        reports = {r.name: r for r in job.notes_of(rlhf.HeldOutAnswers)}
        names = {sft.name: BEFORE} | {f"β = {run.config.beta:g}": after(run.config.beta) for run in runs}
        behaviour = {names[k]: (r.length, r.correct, r.padding) for k, r in reports.items() if k in names}
        policies = [(after(run.config.beta), run.policy) for run in runs]
        return measure(sft.model, sft.tokenizer, rm.model, cfg.biased, policies, behaviour, cfg.seed)

    return work
