"""PPO, RLOO and GRPO side by side: the same start model, reward model, prompts, β and seed, one run each
(llmlab/ppo.py for PPO, trl's RLOOTrainer and GRPOTrainer through llmlab/rlhf.py), and what tells them apart:

- the baseline each subtracts: PPO a learned critic V (a value head: one more network to train and keep),
  RLOO the mean reward of the other answers to the same question, GRPO the group mean, divided by the group std;
- where the KL leash goes: PPO and RLOO subtract β·KL from the reward (the k1 estimator, log π − log π_ref),
  GRPO adds β·KL to the loss per token with the k3 estimator ((r − 1) − log r, r = π_ref/π: never negative);
- the clip: PPO reuses each batch for several epochs, so π_new/π_old moves and the clip stops it; one gradient
  step per batch (trl's default for RLOO and GRPO) keeps the ratio at 1, so nothing clips there.

    work = comparison_work(sft, rm, Comparison(beta=1.0, steps=30))   # a Job's work: one run per algorithm
    rows = memory_rows(sft.model, rm.model)                            # what each keeps in memory
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from transformers import PreTrainedModel

from llmlab import ppo, rlhf
from llmlab.jobs import Job, TaggedJob
from llmlab.modeling import LoadedModel
from llmlab.reward import RewardRun

ALGORITHMS = ("PPO", "RLOO", "GRPO")
KL_ESTIMATORS = {  # what each trainer puts in its objective, and what it logs as "kl"
    "PPO": "k1 = log π − log π_ref per token, in the reward (this project's PPO logs k1 and k3 summed per answer)",
    "RLOO": "k1 per token, summed per answer into the reward (trl logs its per-token mean as kl)",
    "GRPO": "k3 = (r − 1) − log r per token, r = π_ref/π, added to the loss (trl logs its per-token mean as kl)",
}


@dataclass(frozen=True)
class Comparison:
    """One comparison: the settings every algorithm shares. Field help texts are the page's slider help."""

    beta: float = field(
        default=1.0,
        metadata={
            "help": "The same KL coefficient for all three. PPO and RLOO charge β·KL in the reward, GRPO adds "
            "β·KL (per token, k3) to its loss: the same number is a different leash."
        },
    )
    steps: int = field(
        default=30, metadata={"help": "Batches of 8 questions × 8 sampled answers each algorithm trains on."}
    )
    reward: str = field(
        default="reward model",
        metadata={"help": "What the policies maximise: the reward model's score, or verifiable correctness."},
    )
    seed: int = 0

    def configs(self) -> dict[str, ppo.PPOConfig | rlhf.RLRunConfig]:
        """Each algorithm's own config with the shared settings (the rest at each one's defaults)."""
        shared = {"beta": self.beta, "max_steps": self.steps, "reward": self.reward, "seed": self.seed}
        return {
            "PPO": ppo.PPOConfig(**shared),
            "RLOO": rlhf.RLRunConfig(**shared, algorithm="RLOO"),
            "GRPO": rlhf.RLRunConfig(**shared, algorithm="GRPO"),
        }

    def check(self) -> None:
        for config in self.configs().values():
            config.check()


@dataclass
class AlgorithmRun:
    algorithm: str
    run: ppo.PPORun | rlhf.RLRun
    seconds: float


def comparison_work(sft: LoadedModel, reward: RewardRun | None, comparison: Comparison, prompts=None):
    """A Job's work: PPO, RLOO and GRPO one after another (each step logged with `algorithm` = its index in
    ALGORITHMS); then, on one question, the advantages each would give the same sampled answers (a job note).
    Stop ends the current run and skips the rest."""
    comparison.check()
    if comparison.reward == "reward model" and reward is None:
        raise rlhf.RLInputError("This comparison needs a reward model, or the correctness reward.")

    def work(job: Job) -> list[AlgorithmRun]:
        runs = []
        for index, (name, config) in enumerate(comparison.configs().items()):
            if job.should_stop:
                break
            tagged = TaggedJob(job, algorithm=index)
            if isinstance(config, ppo.PPOConfig):
                run = ppo.run_ppo(sft, reward, config, tagged, prompts)
            else:
                run = rlhf.run_rl(sft, reward, config, tagged, prompts)
            runs.append(AlgorithmRun(name, run, run.seconds))
        if runs and runs[0].algorithm == "PPO" and not job.should_stop:
            job.note(varied_advantages(runs[0].run, sft, reward, prompts or rlhf.rl_prompts(), comparison.seed))
        return runs

    return work


ADVANTAGE_CANDIDATES = 8  # questions tried for the advantages view


def varied_advantages(run: ppo.PPORun, sft: LoadedModel, reward: RewardRun | None, prompts, seed: int):
    """The advantages view on the first of a few questions whose sampled answers differ most (identical answers
    give RLOO and GRPO nothing to compare: every advantage 0), so the three baselines can be told apart."""
    views = [ppo.answer_advantages(run, sft, reward, p, seed=seed) for p in list(prompts)[:ADVANTAGE_CANDIDATES]]
    return max(views, key=lambda v: len(set(v.completions)))  # max keeps the first of equals


def algorithm_of(row: dict) -> str:
    return ALGORITHMS[int(row["algorithm"])]


def summary_rows(history: Sequence[dict], runs: Sequence[AlgorithmRun] = ()) -> list[dict]:
    """One row per algorithm: its end state (mean of the last 5 steps) and wall time."""
    seconds = {r.algorithm: r.seconds for r in runs}
    return [
        {"algorithm": name}
        | rlhf.end_state_row([h for h in history if algorithm_of(h) == name])
        | {"wall time (s)": round(seconds[name], 1) if name in seconds else None}
        for name in dict.fromkeys(algorithm_of(h) for h in history)
    ]


def trajectory(history: Sequence[dict], name: str, window: int = 5) -> tuple[list[float], list[float]]:
    """An algorithm's path in the (KL, reward) plane: means over `window` consecutive steps."""
    steps = [h for h in history if algorithm_of(h) == name]
    cuts = range(0, len(steps), window)
    kl = [float(np.mean([h["kl_seq"] for h in steps[c : c + window]])) for c in cuts]
    reward = [float(np.mean([h["rewards/judge/mean"] for h in steps[c : c + window]])) for c in cuts]
    return kl, reward


def clip_fractions(history: Sequence[dict], name: str) -> tuple[list[int], list[float]]:
    """Per step, the share of answer tokens whose ratio π_new/π_old was clipped (PPO: `clip_fraction`; trl's
    trainers: `clip_ratio/region_mean`, 0 at one gradient step per batch)."""
    steps = [h for h in history if algorithm_of(h) == name]
    key = "clip_fraction" if name == "PPO" else "clip_ratio/region_mean"
    return [int(h["step"]) for h in steps], [float(h.get(key, math.nan)) for h in steps]


def _parameters(model: PreTrainedModel | None) -> int:
    return 0 if model is None else sum(p.numel() for p in model.parameters())


def memory_rows(policy: PreTrainedModel, reward_model: PreTrainedModel | None) -> list[dict]:
    """What each algorithm keeps in memory during training, counted on these models: AdamW keeps two more numbers
    per trained parameter. PPO's critic here is a value head on the policy (one linear layer); InstructGPT's was a
    second model the size of the reward model, trained too (the page says so)."""
    n_policy, n_reward = _parameters(policy), _parameters(reward_model)
    head = policy.config.hidden_size + 1
    rows = []
    for name in ALGORITHMS:
        trained = n_policy + (head if name == "PPO" else 0)
        kept = trained + n_policy + n_reward  # policy (+ head), frozen reference, reward model
        models = "policy, reference, reward model" + (", value head (the critic)" if name == "PPO" else "")
        rows.append(
            {
                "algorithm": name,
                "models in memory": models,
                "baseline": {
                    "PPO": "learned critic V",
                    "RLOO": "mean of the other answers",
                    "GRPO": "group mean ÷ group std",
                }[name],
                "parameters kept": kept,
                "with AdamW state": kept + 2 * trained,
            }
        )
    return rows
