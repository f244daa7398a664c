"""RLHF's third stage: maximise a reward while staying close to the SFT model (the KL penalty).

Two views of the same objective, max_π E_π[r] − β·KL(π ‖ π_ref):

1. **Exact, over K candidates** (instant). Sample K answers to one prompt from the SFT model π_ref, score
   them with a reward model, and the optimum of the objective over distributions on those answers has a
   closed form: π*(y) ∝ π_ref(y)·exp(r(y)/β). Computed with log-sum-exp, it is exact for every β from
   1e-3 to 1e3 (and the limits 0 and ∞), so a β slider redraws with no model call at all. π_ref here is
   the SFT model's probability of each whole answer, renormalised over the distinct candidates.

2. **Online, with trl's RLOOTrainer** (live). trl 1.16 has no PPOTrainer; RLOO is the card's PPO loop
   with the learned value function replaced by the mean reward of the other samples for the same prompt
   (leave-one-out baseline), and it subtracts β·KL from the reward exactly as the card's pseudocode does.
   `beta` is that KL coefficient; at β = 0 nothing holds the policy near the SFT model.

    cands = sample_candidates(sft.model, sft.tokenizer, rm.model, prompt, k=32)
    point = optimum_at(cands, beta=0.1)      # .policy (π*), .kl (nats), .expected_proxy, .expected_true
    run = run_rl(sft, rm, RLRunConfig(beta=0.05))   # curves of reward, KL and length per step

The page's tables and its pipeline graph (a session's stages as Graphviz DOT) are built here too, from results.
"""

from __future__ import annotations

import copy
import html
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import datasets
import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from llmlab.jobs import DivergedError, Job
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit, sample_answers, sequence_logps
from llmlab.preferences import padded, padding_level, question_text, questions, true_reward
from llmlab.reward import RewardRun, score
from llmlab.trainargs import demo_trainer_args

BETA_MIN, BETA_MAX = 1e-3, 1e3  # the slider's range; the formulas below also take 0 and inf


class RLInputError(ValueError):
    """A setting the RLHF demos cannot take; the message says what to change."""


# -- 1. the exact KL-regularised optimum over K candidates ------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """K sampled answers to one prompt, merged by text, with everything the sweep needs (cached per prompt)."""

    prompt: str
    texts: tuple[str, ...]  # distinct answers, without the end-of-text token
    counts: tuple[int, ...]  # how many of the K samples gave each answer (0: a padded rewrite)
    ref_logprobs: np.ndarray  # (N,) log π_ref(answer | prompt), nats, summed over the answer's tokens + EOS
    proxy: np.ndarray  # (N,) reward-model score
    true: np.ndarray  # (N,) the verifiable reward (1 = correct), see preferences.true_reward
    lengths: np.ndarray  # (N,) answer length in tokens
    stopped: tuple[bool, ...]  # ended with the end-of-text token (else cut at max_new_tokens)
    padding: np.ndarray  # (N,) polite phrases in each answer

    @property
    def ref_policy(self) -> np.ndarray:
        """π_ref renormalised over the distinct candidates (sums to 1)."""
        return kl_regularized_policy(self.ref_logprobs, np.zeros_like(self.proxy), math.inf)


@torch.inference_mode()
def sample_candidates(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_model: PreTrainedModel,
    prompt: str,
    k: int = 32,
    seed: int = 0,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    padded_rewrites: bool = False,
) -> Candidates:
    """Sample k answers from `policy` (π_ref), merge equal texts, and score each exactly once.

    `temperature` only widens the proposals; π_ref(y) is always the model's own (T = 1) probability.
    `padded_rewrites` adds each sampled answer wrapped in one and two levels of polite padding: answers a
    policy could drift to, which π_ref rarely writes (so reaching them costs a lot of KL)."""
    if not prompt or not prompt.strip():
        raise RLInputError("The prompt is empty: pick or type a question.")
    if not (k >= 1 and temperature > 0 and math.isfinite(temperature)):
        raise RLInputError("Need at least one candidate and a positive, finite temperature.")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if len(prompt_ids) >= context_limit(policy) - 1:
        raise RLInputError("The prompt fills the model's whole context window: shorten it.")
    max_new_tokens = max(1, min(max_new_tokens, context_limit(policy) - len(prompt_ids)))
    device = next(policy.parameters()).device
    eos = tokenizer.eos_token_id
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = policy.generate(
            input_ids=torch.tensor([prompt_ids] * k, device=device),
            attention_mask=torch.ones(k, len(prompt_ids), dtype=torch.long, device=device),
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )[:, len(prompt_ids) :].tolist()  # (k, new)
    counts: dict[tuple[int, ...], int] = {}
    for row in out:
        ids = tuple(row[: row.index(eos) + 1]) if eos in row else tuple(row)  # keep EOS: it is part of p(y)
        counts[ids] = counts.get(ids, 0) + 1
    if padded_rewrites:
        room = context_limit(policy) - len(prompt_ids)
        for n, ids in enumerate(list(counts)):
            text = tokenizer.decode([i for i in ids if i != eos])
            for level in (1, 2):
                rewrite = tokenizer(padded(text, level, n), add_special_tokens=False)["input_ids"] + [eos]
                if len(rewrite) <= room:
                    counts.setdefault(tuple(rewrite), 0)
    token_lists = list(counts)
    logps = sequence_logps(policy, [prompt_ids] * len(token_lists), token_lists, tokenizer.pad_token_id)
    logps = logps.double().numpy()  # nats; float64 for exp(r/β) downstream
    # Different token sequences can decode to one text: merge them (probabilities add).
    merged: dict[str, dict] = {}
    for ids, logp in zip(token_lists, logps, strict=True):
        text = tokenizer.decode([i for i in ids if i != eos])
        entry = merged.setdefault(text, {"count": 0, "logps": [], "length": 0, "stopped": bool(ids) and ids[-1] == eos})
        entry["count"] += counts[ids]
        entry["logps"].append(logp)
        entry["length"] = max(entry["length"], len(ids))
    texts = tuple(merged)
    entries = list(merged.values())
    proxy = score(reward_model, tokenizer, [prompt] * len(texts), list(texts)).double().numpy()
    return Candidates(
        prompt=prompt,
        texts=texts,
        counts=tuple(e["count"] for e in entries),
        ref_logprobs=np.array([np.logaddexp.reduce(np.array(e["logps"])) for e in entries]),
        proxy=proxy,
        true=np.array([true_reward(prompt, t) for t in texts], dtype=float),
        lengths=np.array([e["length"] for e in entries], dtype=float),
        stopped=tuple(e["stopped"] for e in entries),
        padding=np.array([padding_level(t) for t in texts], dtype=float),
    )


def _check_beta(beta: float) -> None:
    if math.isnan(beta) or beta < 0:
        raise RLInputError(f"β must be a number ≥ 0 (got {beta}).")


def log_kl_regularized_policy(ref_logprobs: np.ndarray, rewards: np.ndarray, beta: float) -> np.ndarray:
    """log π*(y) = log π_ref(y) + r(y)/β − log Z over the candidates (log-sum-exp: no overflow, no underflow).

    β = inf gives π_ref; β = 0 (or a β so small that r/β overflows) gives the limit: π_ref restricted
    to the highest-reward candidates (−inf elsewhere). `ref_logprobs` need not be normalised."""
    _check_beta(beta)
    ref_logprobs = np.asarray(ref_logprobs, dtype=float)
    rewards = np.asarray(rewards, dtype=float)
    if ref_logprobs.shape != rewards.shape or ref_logprobs.size == 0:
        raise RLInputError("Need one reward per candidate, and at least one candidate.")
    if not (np.all(np.isfinite(rewards)) and not np.any(np.isnan(ref_logprobs))):
        raise RLInputError("A reward or log-probability is NaN or infinite: the reward model has diverged.")
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        best_only = np.where(rewards == rewards.max(), 0.0, -np.inf)
        logits = ref_logprobs + (rewards / beta if beta > 0 else best_only)
        if beta > 0 and not np.all(np.isfinite(logits[np.isfinite(ref_logprobs)])):  # r/β overflowed
            logits = ref_logprobs + best_only
    return logits - np.logaddexp.reduce(logits)


def kl_regularized_policy(ref_logprobs: np.ndarray, rewards: np.ndarray, beta: float) -> np.ndarray:
    """π*(y) = π_ref(y)·exp(r(y)/β) / Z over the candidates (sums to 1); see `log_kl_regularized_policy`."""
    return np.exp(log_kl_regularized_policy(ref_logprobs, rewards, beta))


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p ‖ q) = Σ p·log(p/q) in nats; terms with p = 0 contribute 0."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    support = p > 0
    return float(np.sum(p[support] * (np.log(p[support]) - np.log(q[support]))))


def kl_divergence_of_logs(log_p: np.ndarray, log_q: np.ndarray) -> float:
    """KL(p ‖ q) from log-probabilities: exact even where q underflows to 0 as a probability
    (a padded rewrite can have log π_ref = −300 nats)."""
    support = np.isfinite(log_p)
    return float(np.sum(np.exp(log_p[support]) * (log_p[support] - log_q[support])))


@dataclass(frozen=True)
class Optimum:
    beta: float
    policy: np.ndarray  # π* over the candidates (sums to 1)
    kl: float  # KL(π* ‖ π_ref), nats
    expected_proxy: float  # E_π*[reward-model score]
    expected_true: float  # E_π*[true reward] = probability of a correct answer
    expected_length: float  # E_π*[answer length], tokens
    expected_padding: float  # E_π*[polite phrases per answer]


def optimum_at(cands: Candidates, beta: float) -> Optimum:
    """The KL-regularised optimum at one β, and what it scores."""
    log_policy = log_kl_regularized_policy(cands.ref_logprobs, cands.proxy, beta)
    policy = np.exp(log_policy)
    log_ref = log_kl_regularized_policy(cands.ref_logprobs, np.zeros_like(cands.proxy), math.inf)
    return Optimum(
        beta=beta,
        policy=policy,
        kl=kl_divergence_of_logs(log_policy, log_ref),
        expected_proxy=float(policy @ cands.proxy),
        expected_true=float(policy @ cands.true),
        expected_length=float(policy @ cands.lengths),
        expected_padding=float(policy @ cands.padding),
    )


@dataclass(frozen=True)
class Frontier:
    """The optimum's scores over a grid of β (arrays of the grid's length); β-independent, so computed once
    per candidate set and only the current β's marker moves."""

    betas: np.ndarray
    kl: np.ndarray  # KL(π* ‖ π_ref), nats
    expected_proxy: np.ndarray
    expected_true: np.ndarray
    expected_length: np.ndarray
    expected_padding: np.ndarray


def frontier(cands: Candidates, betas: Sequence[float]) -> Frontier:
    """The reward-vs-KL frontier: the optimum at every β of the grid at once, (B, N) in log space."""
    betas = np.asarray(betas, dtype=float)
    if np.any(np.isnan(betas)) or np.any(betas <= 0):
        raise RLInputError("The frontier's β values must be positive numbers.")
    if not np.all(np.isfinite(cands.proxy)):
        raise RLInputError("A reward is NaN or infinite: the reward model has diverged.")
    log_ref = log_kl_regularized_policy(cands.ref_logprobs, np.zeros_like(cands.proxy), math.inf)  # (N,)
    best_only = log_ref + np.where(cands.proxy == cands.proxy.max(), 0.0, -np.inf)  # the β → 0 limit
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        logits = log_ref[None, :] + cands.proxy[None, :] / betas[:, None]  # (B, N)
        overflowed = ~np.all(np.isfinite(logits[:, np.isfinite(log_ref)]), axis=1)
        logits[overflowed] = best_only
        log_policy = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)  # (B, N)
        policy = np.exp(log_policy)
        kl = np.where(policy > 0, policy * (log_policy - log_ref[None, :]), 0.0).sum(axis=1)  # (B,)
    return Frontier(
        betas=betas,
        kl=kl,
        expected_proxy=policy @ cands.proxy,
        expected_true=policy @ cands.true,
        expected_length=policy @ cands.lengths,
        expected_padding=policy @ cands.padding,
    )


def beta_grid(n: int = 61) -> np.ndarray:
    """β values evenly spaced in log10 over the slider's range."""
    return np.logspace(math.log10(BETA_MIN), math.log10(BETA_MAX), n)


# The KL sweep's β slider: BETA_MIN … BETA_MAX, 10 steps per decade, each rounded to 3 digits (as a link shows it).
SWEEP_BETAS = tuple(float(f"{10 ** (k / 10):.3g}") for k in range(-30, 31))
HACKING_MARGIN = 0.05  # a smaller drop in the share of correct answers is not called reward hacking


def frontier_summary(curve: Frontier) -> str:
    """The frontier in words: how the optimum's score, correctness and politeness change from the largest β
    (π_ref) to the smallest, and whether chasing the score costs correctness somewhere (reward hacking).
    The grid runs from small β to large, as `beta_grid` makes it."""
    true, proxy = curve.expected_true, curve.expected_proxy
    worst = int(true.argmin())
    if true[worst] < true[-1] - HACKING_MARGIN:
        verdict = (
            f"Chasing the score costs correctness: at β = {curve.betas[worst]:.3g} the optimum is right "
            f"{true[worst]:.0%} of the time, against {true[-1]:.0%} for π_ref, while its reward-model score is "
            f"{proxy[worst]:.2f} against {proxy[-1]:.2f}: reward hacking, which only the KL penalty holds back."
        )
    else:
        verdict = "Here no β costs correctness; try the biased reward model or another question."
    return (
        f"From β = {curve.betas[-1]:g} to β = {curve.betas[0]:g}, E[reward-model score] goes {proxy[-1]:.2f} → "
        f"{proxy[0]:.2f}, correct answers {true[-1]:.0%} → {true[0]:.0%}, polite phrases "
        f"{curve.expected_padding[-1]:.1f} → {curve.expected_padding[0]:.1f} per answer. {verdict}"
    )


# -- 2. online RL with trl's RLOOTrainer -------------------------------------------------------------------

REWARDS = ("reward model", "correctness")
ALGORITHMS = ("RLOO", "GRPO")  # trl's online trainers; the card's PPO is llmlab.ppo (trl 1.16 has none)
RL_BETAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # the KL coefficients the page offers, side by side
# The learning rates the page offers the reward model and RL: from too small to move the model to large enough to
# make its loss NaN within a few steps (on purpose: the divergence message is part of the lesson).


@dataclass(frozen=True)
class RLRunConfig:
    """One online-RL run. Field help texts are the page's slider help."""

    beta: float = field(
        default=1.0,
        metadata={
            "help": "KL coefficient: reward minus β·KL(policy ‖ SFT model), KL in nats per answer. 0 = no leash. "
            "trl's default 0.05 is too weak for these reward-model scores (tens of units): the policy hacks."
        },
    )
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps; each samples new answers."})
    learning_rate: float = field(
        default=1e-4,
        metadata={
            "help": "AdamW step size. 1e-4 suits this 1M model (trl's default 1e-6 barely moves it); measured, "
            "even with the true reward as the reward, 5e-4 made the policy drift and get less correct."
        },
    )
    prompts_per_step: int = field(default=8, metadata={"help": "Questions per step."})
    num_generations: int = field(
        default=8,
        metadata={"help": "Answers sampled per question; each is judged against the mean of the others (RLOO)."},
    )
    max_completion_length: int = field(default=24, metadata={"help": "Longest answer sampled, in tokens."})
    reward: str = field(
        default="reward model",
        metadata={"help": "What the policy maximises: the reward model's score, or verifiable correctness."},
    )
    sample_every: int = field(default=10, metadata={"help": "Keep sample answers every this many steps."})
    algorithm: str = field(
        default="RLOO",
        metadata={
            "help": "trl's RLOOTrainer (advantage = reward − mean of the other answers to the question; β·KL "
            "subtracted from each answer's reward) or GRPOTrainer (advantage = (reward − group mean) / group "
            "std; β·KL added to the loss per token, with the k3 estimator)."
        },
    )
    seed: int = 0

    def check(self) -> None:
        if math.isnan(self.beta) or self.beta < 0 or math.isinf(self.beta):
            raise RLInputError("The KL coefficient must be a finite number ≥ 0.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise RLInputError("The learning rate must be a positive number.")
        if self.max_steps < 1 or self.prompts_per_step < 1 or self.max_completion_length < 1:
            raise RLInputError("Steps, questions per step and answer length must be positive.")
        if self.num_generations < 2:
            raise RLInputError("RLOO needs at least 2 answers per question (the others are the baseline).")
        if self.reward not in REWARDS:
            raise RLInputError(f"reward must be one of {REWARDS}.")
        if self.algorithm not in ALGORITHMS:
            raise RLInputError(f"algorithm must be one of {ALGORITHMS}.")


def trainer_config(cfg: RLRunConfig, output_dir: str, device: str = "cpu") -> RLOOConfig | GRPOConfig:
    """trl's config (RLOOConfig, or GRPOConfig when cfg.algorithm is GRPO): batch size counts completions, and
    one generation batch feeds one optimizer step. GRPO keeps trl's default loss ("dapo": token losses averaged
    over the batch's tokens) and its per-group reward scaling."""
    batch = cfg.prompts_per_step * cfg.num_generations
    config = GRPOConfig if cfg.algorithm == "GRPO" else RLOOConfig
    return config(
        output_dir=output_dir,
        beta=cfg.beta,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        per_device_train_batch_size=batch,
        generation_batch_size=batch,
        num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length,
        temperature=1.0,
        weight_decay=0.0,
        **demo_trainer_args(device, cfg.seed),
    )


def rl_prompts() -> list[str]:
    """The questions RL practises on: the ones the reward model's preference pairs cover."""
    return [q.prompt for q in questions("train")]


@dataclass(frozen=True)
class SampledAnswers:
    """One answer per question at a checkpoint of an online RL run: (prompt, answer, reward, correct)."""

    step: int
    beta: float
    samples: list[tuple[str, str, float, bool]]


class _Judge:
    """The reward function trl calls once per batch. It returns the reward (reward model or correctness)
    and, as extra metrics, the true reward, the sequence KL to the SFT model and the padding; every
    `sample_every` steps it keeps a few answers as a job note."""

    __name__ = "judge"  # trl names the reward's metrics after it

    def __init__(self, policy, reference: LoadedModel, reward_model: PreTrainedModel | None, cfg, job):
        self.policy, self.reference, self.reward_model, self.cfg, self.job = policy, reference, reward_model, cfg, job

    def __call__(self, prompts, completions, completion_ids, trainer_state=None, log_metric=None, **kwargs):
        tokenizer = self.reference.tokenizer
        if self.reward_model is not None:
            rewards = score(self.reward_model, tokenizer, prompts, completions).tolist()
        else:
            rewards = [true_reward(p, c) for p, c in zip(prompts, completions, strict=True)]
        true = [true_reward(p, c) for p, c in zip(prompts, completions, strict=True)]
        kl = self._sequence_kl(prompts, completion_ids)
        step = trainer_state.global_step if trainer_state is not None else 0
        if log_metric is not None:
            log_metric("true_reward", float(np.mean(true)))
            log_metric("kl_seq", float(np.mean(kl)))
            log_metric("padding", float(np.mean([padding_level(c) for c in completions])))
        if self.job is not None and (step % self.cfg.sample_every == 0 or step == self.cfg.max_steps - 1):
            picks = range(0, len(prompts), self.cfg.num_generations)  # one answer per question
            self.job.note(
                SampledAnswers(step, self.cfg.beta, [(prompts[i], completions[i], rewards[i], true[i]) for i in picks])
            )
        return rewards

    def _sequence_kl(self, prompts: Sequence[str], completion_ids: Sequence[Sequence[int]]) -> list[float]:
        """log π(y|x) − log π_ref(y|x) per sampled answer: its mean estimates the sequence KL(π ‖ π_ref),
        whatever β is (trl logs no KL at β = 0). Answers to one prompt share one batched forward."""
        tokenizer = self.reference.tokenizer
        kl = [0.0] * len(prompts)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        for prompt, rows in groups.items():
            prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            answers = [list(completion_ids[i]) for i in rows]
            prompts_ids, pad = [prompt_ids] * len(answers), tokenizer.pad_token_id
            diff = sequence_logps(self.policy, prompts_ids, answers, pad) - sequence_logps(
                self.reference.model, prompts_ids, answers, pad
            )
            for i, d in zip(rows, diff, strict=True):
                kl[i] = float(d)
        return kl


@dataclass
class RLRun:
    config: RLRunConfig
    history: list[dict]  # one dict per step: reward, rewards/judge/mean, true_reward, kl_seq, completions/...
    seconds: float
    policy: PreTrainedModel


def run_rl(sft: LoadedModel, reward: RewardRun | None, cfg: RLRunConfig, job: Job | None = None, prompts=None) -> RLRun:
    """Online RL from a copy of the SFT model with RLOOTrainer (or GRPOTrainer, cfg.algorithm). `reward` is the reward model (needed unless
    cfg.reward == "correctness"). With a `job`, every step's metrics go to `job.metrics` (with "beta")."""
    cfg.check()
    if cfg.reward == "reward model" and reward is None:
        raise RLInputError("This run needs a reward model: train one first, or choose the correctness reward.")
    start = time.perf_counter()
    policy = trainable_copy(sft)
    policy.generation_config.pad_token_id = sft.tokenizer.pad_token_id
    judge = _Judge(policy, sft, reward.model if cfg.reward == "reward model" else None, cfg, job)
    dataset = datasets.Dataset.from_list([{"prompt": p} for p in (prompts or rl_prompts())])
    history: list[dict] = []
    callbacks = [_HistoryCallback(history, cfg.beta, job)]
    with tempfile.TemporaryDirectory(prefix="llmlab-rl-") as out:
        trainer = (GRPOTrainer if cfg.algorithm == "GRPO" else RLOOTrainer)(
            model=policy,
            reward_funcs=judge,
            args=trainer_config(cfg, out, sft.device),
            train_dataset=dataset,
            processing_class=copy.deepcopy(sft.tokenizer),  # trl sets padding on it; keep the shared one as is
            callbacks=callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # metrics go to the job, not to the server's stdout
        try:
            trainer.train()
        except RuntimeError as err:
            if "probability tensor" in str(err):  # sampling from a policy whose logits became NaN/inf
                raise DivergedError("The policy diverged (NaN probabilities): lower the learning rate.") from err
            raise
    policy.eval().requires_grad_(False)
    return RLRun(config=cfg, history=history, seconds=time.perf_counter() - start, policy=policy)


class _HistoryCallback(TrainerCallback):
    """Like JobCallback (stop on request, stop on NaN), but it tags each step with β and keeps the history."""

    def __init__(self, history: list[dict], beta: float, job: Job | None):
        self.history, self.beta, self.job = history, beta, job

    def on_step_end(self, args, state, control, **kwargs):
        if self.job is not None and self.job.should_stop:
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "train_runtime" in logs:
            return control
        values = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float))}
        values["step"] = state.global_step
        values["beta"] = self.beta
        if any(not math.isfinite(values.get(k, 0.0)) for k in ("loss", "reward")):
            raise DivergedError(
                f"The run diverged at step {state.global_step} (NaN loss or reward): lower the learning rate."
            )
        self.history.append(values)
        if self.job is not None:
            self.job.log(**values)
        return control


def kl_comparison_work(sft: LoadedModel, reward: RewardRun | None, configs: Sequence):
    """A Job's work: one RL run per config (RLRunConfig, or llmlab.ppo.PPOConfig for PPO; e.g. per β, same seed),
    one after another; returns the runs.
    Stop ends the current run and skips the rest. With a reward model, the SFT model and each finished policy
    then answer the held-out questions (`held_out_answers`, one job note each): hacking in the policy's words."""
    for cfg in configs:
        cfg.check()  # fail before any training, with the settings' message

    def work(job: Job) -> list[RLRun]:
        from llmlab.ppo import PPOConfig, run_ppo  # (llmlab.ppo builds on this module)

        runs = []
        for cfg in configs:
            if job.should_stop:
                break
            runs.append(run_ppo(sft, reward, cfg, job) if isinstance(cfg, PPOConfig) else run_rl(sft, reward, cfg, job))
        uses_reward_model = any(cfg.reward == "reward model" for cfg in configs)
        if reward is not None and uses_reward_model and runs and not job.should_stop:
            job.note(held_out_answers(sft.name, sft.model, sft.tokenizer, reward.model))
            for run in runs:
                job.note(held_out_answers(f"β = {run.config.beta:g}", run.policy, sft.tokenizer, reward.model))
        return runs

    return work


def final_metrics(history: Sequence[dict], last: int = 5) -> dict[str, float]:
    """A run's end state: the mean of its last `last` steps (single steps are noisy: 16 answers each)."""
    tail = list(history)[-last:]
    keys = ("rewards/judge/mean", "true_reward", "kl_seq", "completions/mean_length", "padding")
    return {k: float(np.mean([h[k] for h in tail if k in h])) if tail else float("nan") for k in keys}


def run_betas(history: Sequence[dict]) -> list[float]:
    """The β of each run of a KL comparison's metrics, in run order."""
    return list(dict.fromkeys(h["beta"] for h in history))


def end_state_row(run: Sequence[dict]) -> dict:
    """A run's steps and end state (`final_metrics`: reward, correctness, KL) as table columns."""
    end = final_metrics(run)
    return {
        "steps": int(max(h["step"] for h in run)),
        "reward (last 5 steps)": round(end["rewards/judge/mean"], 3),
        "correct": f"{end['true_reward']:.0%}",
        "KL (nats/answer)": round(end["kl_seq"], 3),
    }


def side_by_side(history: Sequence[dict]) -> list[dict]:
    """The KL comparison as a table: one row per run (β), its steps, end state, answer length and padding."""
    rows = []
    for beta in run_betas(history):
        run = [h for h in history if h["beta"] == beta]
        end = final_metrics(run)
        rows.append(
            {"β": f"{beta:g}"}
            | end_state_row(run)
            | {"length (tokens)": round(end["completions/mean_length"], 1), "polite phrases": round(end["padding"], 2)}
        )
    return rows


def checkpoint_samples(notes: Sequence[SampledAnswers]) -> list[dict]:
    """The answers sampled at each checkpoint of each run, as a table (one row per answer)."""
    return [
        {
            "β": f"{note.beta:g}",
            "step": note.step,
            "question": question_text(prompt),
            "answer": answer,
            "reward": round(reward, 3),
            "correct": "✓" if correct else "✗",
        }
        for note in notes
        for prompt, answer, reward, correct in note.samples
    ]


# -- reward hacking in the policy's own words: each trained policy answers the same held-out questions --------

HELD_OUT_SAMPLES = 8  # answers sampled per held-out question and policy (means over 24 × 8 answers)


@dataclass(frozen=True)
class HeldOutAnswers:
    """One policy's answers to the held-out questions (the 24 "unseen" ones: in no preference pair, never an RL
    prompt): per answer (question, answer,
    reward-model score, correct, tokens), and the means over all of them."""

    name: str
    answers: list[tuple[str, str, float, bool, int]]
    score: float  # mean reward-model score
    correct: float  # share of right answers (true reward)
    length: float  # mean answer length, tokens
    padding: float  # mean polite phrases per answer


def held_out_answers(
    name: str,
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    reward_model: PreTrainedModel,
    samples: int = HELD_OUT_SAMPLES,
    seed: int = 1234,
    max_new_tokens: int = 24,
) -> HeldOutAnswers:
    """Sample `samples` answers per held-out question from `policy` (our private-seed sampler: the same seeds for
    every policy), score them with the reward model and check them against the facts."""
    prompts = [q.prompt for q in questions("unseen")]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    rows: list[tuple[str, str, float, bool, int]] = []
    for round_ in range(samples):
        answers = sample_answers(policy, tokenizer, ids, max_new_tokens=max_new_tokens, seed=seed + round_)
        texts = [tokenizer.decode(a, skip_special_tokens=True) for a in answers]
        scores = score(reward_model, tokenizer, prompts, texts).tolist()
        for prompt, text, answer, value in zip(prompts, texts, answers, scores, strict=True):
            tokens = len(answer) - (1 if answer and answer[-1] == tokenizer.eos_token_id else 0)
            rows.append((question_text(prompt), text, value, true_reward(prompt, text) > 0, tokens))
    return HeldOutAnswers(
        name=name,
        answers=rows,
        score=float(np.mean([r[2] for r in rows])),
        correct=float(np.mean([r[3] for r in rows])),
        length=float(np.mean([r[4] for r in rows])),
        padding=float(np.mean([padding_level(r[1]) for r in rows])),
    )


def held_out_summary(reports: Sequence[HeldOutAnswers]) -> list[dict]:
    """One row per policy: its means over the held-out answers."""
    return [
        {
            "policy": r.name,
            "reward-model score": round(r.score, 2),
            "correct": f"{r.correct:.0%}",
            "length (tokens)": round(r.length, 1),
            "polite phrases": round(r.padding, 2),
        }
        for r in reports
    ]


def held_out_side_by_side(reports: Sequence[HeldOutAnswers], questions_shown: int = 12) -> list[dict]:
    """The first sampled answer of each policy to the first `questions_shown` held-out questions, side by side:
    one row per question, per policy its answer, score and a tick."""
    rows = []
    for i in range(min(questions_shown, len(reports[0].answers) if reports else 0)):
        row = {"question": reports[0].answers[i][0]}
        for r in reports:
            _, answer, value, correct, _ = r.answers[i]
            row[f"{r.name}: answer"] = answer
            row[f"{r.name}: score"] = round(value, 2)
            row[f"{r.name}: correct"] = "✓" if correct else "✗"
        rows.append(row)
    return rows


# -- 3. the pipeline: where each stage of a session stands -----------------------------------------------------

IDLE, BUSY, READY, FAILED = "#eeeeee", "#fde2c4", "#d4ecd0", "#f6d0d0"  # a stage's colour


def pipeline_stages(policy: str, reward_job: Job | None, rl_job: Job | None) -> list[tuple[str, str, str]]:
    """(title, state line, colour) of the three stages, from a session's reward-model run and online-RL run
    (None: not run in this session)."""
    if reward_job is None:
        rm_line, rm_color = "not trained in this session:\ntabs 2-3 use the server's reward models", IDLE
    elif reward_job.running:
        step = reward_job.metrics[-1].get("step", 0) if reward_job.metrics else 0
        rm_line, rm_color = f"training… step {step:g}", BUSY
    elif isinstance(reward_job.result, RewardRun):
        run = reward_job.result
        labels = "biased" if run.config.biased else "unbiased"
        rm_line, rm_color = f"trained on {labels} pairs\nheld-out accuracy {run.heldout.accuracy:.0%}", READY
    else:
        rm_line, rm_color = f"run {reward_job.status}: nothing kept", FAILED
    if rl_job is None:
        rl_line, rl_color = "not run in this session", IDLE
    elif rl_job.running:
        last = rl_job.metrics[-1] if rl_job.metrics else {}
        rl_line, rl_color = f"training… β = {last.get('beta', 0):g}, step {last.get('step', 0):g}", BUSY
    elif rl_job.status in ("done", "stopped") and rl_job.metrics:
        last = rl_job.metrics[-1]
        rl_line = (
            f"{rl_job.status}: last β = {last['beta']:g}\nKL {last.get('kl_seq', 0):.2f} nats, "
            f"length {last.get('completions/mean_length', 0):.0f} tokens"
        )
        rl_color = READY
    else:
        rl_line, rl_color = f"run {rl_job.status}", FAILED
    return [
        ("1 · SFT model (π_ref)", f"{policy} (bundled; trained by scripts/train_sft.py)", READY),
        ("2 · Reward model", rm_line, rm_color),
        ("3 · RL policy (KL-penalised)", rl_line, rl_color),
    ]


def pipeline_dot(stages: Sequence[tuple[str, str, str]]) -> str:
    """Graphviz DOT for the three stages, one box each (title in bold, then the state's lines), HTML-escaped."""
    nodes = []
    for n, (title, line, color) in enumerate(stages):
        label = f"<<b>{html.escape(title)}</b><br/>{'<br/>'.join(html.escape(part) for part in line.split(chr(10)))}>"
        nodes.append(f'  s{n} [label={label}, fillcolor="{color}"];')
    return "\n".join(
        [
            "digraph rlhf {",
            '  rankdir=TB; nodesep=0.3; ranksep=0.35; bgcolor="transparent";',  # no white box on a dark theme
            '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=14, fontcolor="#1f2a36", color="#7f8c99"];',
            '  edge [fontname="sans-serif", color="#7f8c99", fontcolor="#7f8c99"];  // readable on light and dark',
            *nodes,
            '  s0 -> s1 [label="answers to compare", fontsize=11];',
            '  s1 -> s2 [label="reward r(x, y)", fontsize=11];',
            '  s0 -> s2 [label="start + KL anchor", fontsize=9, style=dashed];',
            "}",
        ]
    )
