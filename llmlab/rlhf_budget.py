"""SFT or RLHF at a small labelling budget (the RLHF card's Q3), measured on the bundled models.

Both arms get the same N preference pairs (a random subset of the 368 shipped training pairs, the same subset for
both) and start from the same model (tiny-sft, which wrote those pairs' answers):

- **SFT**: supervised fine-tuning on the N chosen answers (trl's SFTTrainer, `llmlab.sft.make_trainer`); the
  rejected answers are thrown away.
- **RLHF**: a reward model trained on the N pairs (trl's RewardTrainer, `llmlab.reward.train_reward_model`), then
  PPO against it (`llmlab.ppo.run_ppo`, the Online RL tab's algorithm and β) on the 96 questions the pairs are
  drawn from. The prompts carry no labels: RL only needs questions, and questions cost nothing to label.

Then each model (and the start model) samples answers to the 24 questions no pair ever asked
(`questions("unseen")`) and to the 96 the pairs ask (`questions("test")`, fresh samples), and the facts decide
correctness (`preferences.true_reward`). The reward model's own accuracy on the held-out test pairs says how good a
judge N pairs make.

    result = compare(sft, BudgetConfig(pairs=64, seed=0))
    result.arms["SFT"].unseen, result.arms["RLHF"].unseen, result.rm_accuracy
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.instructions import Instruction
from llmlab.jobs import Job, JobCallback, TaggedJob
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import sample_answers
from llmlab.ppo import PPOConfig, run_ppo
from llmlab.preferences import preference_pairs, question_text, questions, true_reward
from llmlab.reward import RewardRunConfig, train_reward_model
from llmlab.sft import SFTRunConfig, make_trainer

SHIPPED = len(preference_pairs(split="train"))  # 368
PAIR_CHOICES = (16, 32, 64, 128, 256, SHIPPED)
ARMS = ("start", "SFT", "RLHF")


class BudgetInputError(ValueError):
    """A setting the comparison cannot take; the message says what to change."""


@dataclass(frozen=True)
class BudgetConfig:
    """One comparison at one labelling budget. Field help texts are the page's slider help."""

    pairs: int = field(
        default=64,
        metadata={"help": f"Labelled preference pairs both arms get (a random subset of the {SHIPPED} shipped ones)."},
    )
    sft_steps: int = field(default=30, metadata={"help": "SFT optimizer steps on the chosen answers (16 per step)."})
    sft_learning_rate: float = field(default=1e-3, metadata={"help": "SFT step size."})
    rm_steps: int = field(default=80, metadata={"help": "Reward-model optimizer steps on the pairs (16 per step)."})
    rl_steps: int = field(
        default=20, metadata={"help": "PPO rollout batches against the reward model (64 answers each)."}
    )
    beta: float = field(default=1.0, metadata={"help": "PPO's KL coefficient β (the Online RL tab's default)."})
    eval_samples: int = field(default=8, metadata={"help": "Answers sampled per evaluation question."})
    seed: int = 0

    def check(self) -> None:
        if not 2 <= self.pairs <= SHIPPED:
            raise BudgetInputError(f"The budget must be between 2 and {SHIPPED} pairs.")
        if min(self.sft_steps, self.rm_steps, self.rl_steps, self.eval_samples) < 1:
            raise BudgetInputError("Steps and samples must be at least 1.")
        if not (self.sft_learning_rate > 0 and self.beta >= 0):
            raise BudgetInputError("The learning rate must be positive and β at least 0.")


def budget_pairs(n: int, seed: int = 0) -> list[dict]:
    """The N labelled pairs of a budget: a seeded random subset of the shipped (unbiased) training pairs."""
    return random.Random(seed).sample(preference_pairs(split="train"), min(n, SHIPPED))


def sft_rows(pairs: Sequence[dict]) -> list[Instruction]:
    """What SFT learns from: each pair's chosen answer to its question (the rejected answer is unused)."""
    return [Instruction(question_text(p["prompt"]), p["chosen"], "fact") for p in pairs]


@dataclass(frozen=True)
class Correctness:
    """A model's sampled answers to one split's questions: the share that is right, the mean length."""

    correct: float
    length: float  # tokens
    answers: int


def correctness(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, split: str, samples: int, seed: int = 1234
) -> Correctness:
    """Sample `samples` answers (temperature 1, our private-seed sampler: the same seeds for every model) to each
    question of `split` and check each against the facts."""
    prompts = [q.prompt for q in questions(split)]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    right, lengths = [], []
    for round_ in range(samples):
        for prompt, answer in zip(prompts, sample_answers(model, tokenizer, ids, seed=seed + round_), strict=True):
            right.append(true_reward(prompt, tokenizer.decode(answer, skip_special_tokens=True)))
            lengths.append(len(answer) - (1 if answer and answer[-1] == tokenizer.eos_token_id else 0))
    return Correctness(float(np.mean(right)), float(np.mean(lengths)), len(right))


@dataclass(frozen=True)
class ArmScore:
    """One arm's model on the unseen questions (never in a pair) and on the pairs' questions (fresh samples)."""

    arm: str
    pairs: int  # the budget it was trained on
    unseen: Correctness
    seen: Correctness
    seconds: float  # training time (0 for the start model)


@dataclass
class BudgetResult:
    config: BudgetConfig
    arms: dict[str, ArmScore]
    rm_accuracy: float  # the reward model's accuracy on the held-out test pairs
    seconds: float

    def gain(self, arm: str, split: str = "unseen") -> float:
        """Points of correctness `arm` gained over the start model (negative: lost)."""
        return getattr(self.arms[arm], split).correct - getattr(self.arms["start"], split).correct


def _score(arm: str, model, tokenizer, cfg: BudgetConfig, seconds: float) -> ArmScore:
    return ArmScore(
        arm,
        cfg.pairs,
        correctness(model, tokenizer, "unseen", cfg.eval_samples),
        correctness(model, tokenizer, "test", max(1, cfg.eval_samples // 4)),
        seconds,
    )


def train_sft_arm(start: LoadedModel, pairs: Sequence[dict], cfg: BudgetConfig, job=None) -> PreTrainedModel:
    model = trainable_copy(start)
    sft_cfg = SFTRunConfig(
        samples=len(pairs), max_steps=cfg.sft_steps, learning_rate=cfg.sft_learning_rate, batch_size=16,
        warmup_steps=min(5, cfg.sft_steps // 5), seed=cfg.seed,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="llmlab-budget-") as out:
        callbacks = [JobCallback(job)] if job is not None else []
        make_trainer(model, start.tokenizer, sft_rows(pairs), sft_cfg, out, callbacks).train()
    return model.eval().requires_grad_(False)


def compare(start: LoadedModel, cfg: BudgetConfig, job: Job | None = None) -> BudgetResult:
    """Both arms at one budget from `start` (see the module docstring). With a `job`, training steps are logged
    tagged arm=1 (SFT), 2 (reward model), 3 (PPO), and each scored arm is a job note (ArmScore)."""
    cfg.check()
    begin = time.perf_counter()
    pairs = budget_pairs(cfg.pairs, cfg.seed)
    tok = start.tokenizer
    arms: dict[str, ArmScore] = {}

    def keep(score: ArmScore) -> None:
        arms[score.arm] = score
        if job is not None:
            job.note(score)

    stopped = (lambda: job.should_stop) if job is not None else (lambda: False)
    keep(_score("start", start.model, tok, cfg, 0.0))
    t = time.perf_counter()
    sft_model = train_sft_arm(start, pairs, cfg, TaggedJob(job, arm=1) if job is not None else None)
    keep(_score("SFT", sft_model, tok, cfg, time.perf_counter() - t))
    rm_accuracy = float("nan")
    if not stopped():
        t = time.perf_counter()
        rm_cfg = RewardRunConfig(max_steps=cfg.rm_steps, train_pairs=len(pairs), eval_every=cfg.rm_steps, seed=cfg.seed)
        rm = train_reward_model(start, rm_cfg, TaggedJob(job, arm=2) if job is not None else None, pairs=pairs)
        rm_accuracy = rm.heldout.accuracy
        if job is not None:
            job.note(RewardModelScore(cfg.pairs, rm_accuracy))
        if not stopped():
            ppo = run_ppo(start, rm, PPOConfig(beta=cfg.beta, max_steps=cfg.rl_steps, seed=cfg.seed),
                          TaggedJob(job, arm=3) if job is not None else None)  # fmt: skip
            keep(_score("RLHF", ppo.policy, tok, cfg, time.perf_counter() - t))
    return BudgetResult(cfg, arms, rm_accuracy, time.perf_counter() - begin)


@dataclass(frozen=True)
class RewardModelScore:
    """A job note: the reward model's held-out pair accuracy at a budget."""

    pairs: int
    accuracy: float


def comparison_work(start: LoadedModel, configs: Sequence[BudgetConfig]) -> Callable[[Job], list[BudgetResult]]:
    """A Job's work: one comparison per config (e.g. a small and a larger budget), one after another."""
    for cfg in configs:
        cfg.check()

    def work(job: Job) -> list[BudgetResult]:
        results = []
        for cfg in configs:
            if job.should_stop:
                break
            results.append(compare(start, cfg, TaggedJob(job, pairs=cfg.pairs)))
        return results

    return work
