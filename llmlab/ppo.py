"""PPO for a causal language model, written out: the RLHF card's third stage as InstructGPT ran it.

Why the project writes its own: the card's code example uses trl's `PPOTrainer`, and trl 1.16 ships none (not
even in `trl.experimental`); its online trainers are RLOO and GRPO (see llmlab/rlhf.py). This module is small
enough to read next to the card: each formula is a pure function on tensors, `run_ppo` is the loop that uses them.

One PPO step (one "rollout batch"):

1. Sample G answers to each of P prompts from the policy π and score each answer with the reward model.
2. Per-token rewards: r_t = −β·(log π(y_t) − log π_ref(y_t)) on every answer token, plus the score on the last.
3. A critic V (a value head on the policy) predicts, at each token, the reward still to come; GAE turns rewards and
   values into advantages A_t ("how much better than expected was token t") and returns R_t (the critic's target).
4. Several epochs over the batch, in mini-batches: the clipped policy loss on A_t plus vf_coef × the value loss.

Shapes: (B, T) tensors have one row per answer and one column per answer token; `mask` is 1 on the answer's tokens up
to and including its end-of-text token and 0 after it (a mask's ones always come first).

    run = run_ppo(sft, rm, PPOConfig())        # run.history: the per-step keys of rlhf.run_rl's history, and more
    view = answer_advantages(run, sft, rm, prompt)   # PPO's per-answer advantages next to RLOO's and GRPO's

`PPOTrainer` is the card's API over the same functions (the caller's loop samples, scores and steps):

    ppo = PPOTrainer(config=PPOConfig(), model=model, tokenizer=tok)   # trains `model` in place
    responses = ppo.generate(prompts)
    ppo.step(prompts, responses, scores)
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.jobs import DivergedError, Job
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit
from llmlab.preferences import padding_level, true_reward
from llmlab.reward import RewardRun, score
from llmlab.rlhf import REWARDS, SampledAnswers, rl_prompts


class PPOInputError(ValueError):
    """A PPO setting that cannot work; the message says what to change."""


# -- the formulas ---------------------------------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ x·mask / Σ mask: the mean over answer tokens only."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over the masked tokens of the whole batch (trl's masked_whiten; unbiased variance);
    0 on masked-out tokens."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * mask.sum() / (mask.sum() - 1).clamp(min=1)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def token_logps(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log π(y_t | x, y_<t) per token: log_softmax(logits)[y_t]. logits (B, T, V) are the ones that predict tokens
    (B, T)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k1 = Σ_t (log π(y_t) − log π_ref(y_t)) per answer (B,). Unbiased for KL(π ‖ π_ref) on answers sampled from π,
    but one answer (or a small batch) can give a negative value."""
    return ((logp - ref_logp) * mask).sum(dim=1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """k3 = Σ_t ((ρ_t − 1) − log ρ_t) per answer (B,), with ρ_t = π_ref(y_t)/π(y_t). Also unbiased on samples of π,
    and never negative (x − 1 ≥ log x), with less variance than k1 (Schulman, "Approximating KL divergence")."""
    log_ratio = ref_logp - logp
    return ((torch.exp(log_ratio) - 1 - log_ratio) * mask).sum(dim=1)


def per_token_rewards(
    score: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """InstructGPT's rewards (B, T): r_t = −β·(log π(y_t) − log π_ref(y_t)) on each answer token, and the
    reward-model score (B,) added on the answer's last token. Summed over an answer: score − β·k1."""
    rewards = -beta * (logp - ref_logp) * mask
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)  # index of each answer's last token
    return rewards.scatter_add(1, last.unsqueeze(1), score.to(rewards.dtype).unsqueeze(1))


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, computed backwards from each answer's end:

        δ_t = r_t + γ·V_{t+1} − V_t          (V after the last token = 0: the answer is over)
        A_t = δ_t + γλ·A_{t+1} = Σ_{k≥t} (γλ)^{k−t} δ_k
        R_t = A_t + V_t                       (the value head's target)

    Returns (advantages, returns), both (B, T), raw (not whitened), 0 on masked-out tokens."""
    rewards, values = rewards * mask, values * mask
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)  # V_{t+1}, 0 past the end
    deltas = rewards + gamma * next_values - values
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[:, 0])
    for t in reversed(range(deltas.shape[1])):  # T ≤ max_completion_length steps, each over the whole batch
        running = deltas[:, t] + gamma * lam * running
        advantages[:, t] = running
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(
    logp_new: torch.Tensor, logp_old: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, per token: ratio = π_new(y_t)/π_old(y_t),
    loss = mean_t max(−A_t·ratio, −A_t·clip(ratio, 1 − ε, 1 + ε)): once the ratio has moved ε in the direction A_t
    favours, the token's gradient is 0. Returns (loss, clip fraction: the share of tokens where the clipped term
    is the larger one, trl's definition)."""
    ratio = torch.exp(logp_new - logp_old)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - clip, 1 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, value_clip: float
) -> torch.Tensor:
    """trl PPO's clipped value loss: 0.5·mean_t max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²)."""
    clipped = values_old + torch.clamp(values - values_old, -value_clip, value_clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def approx_kl(logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """How far one update moved the policy on the batch's tokens: 0.5·mean_t (log π_new − log π_old)² (trl's)."""
    return 0.5 * masked_mean((logp_new - logp_old) ** 2, mask)


def rloo_advantages(scores: torch.Tensor, group: int) -> torch.Tensor:
    """RLOO: A_i = s_i − mean of the other answers to the same prompt. `scores` (N,) come in consecutive groups of
    `group` answers per prompt."""
    grouped = scores.view(-1, group)
    others = (grouped.sum(dim=1, keepdim=True) - grouped) / (group - 1)
    return (grouped - others).view(-1)


def grpo_advantages(scores: torch.Tensor, group: int, eps: float = 1e-4) -> torch.Tensor:
    """GRPO: A_i = (s_i − group mean) / (group std + 1e-4), std with Bessel's correction (as trl's GRPOTrainer)."""
    grouped = scores.view(-1, group)
    return ((grouped - grouped.mean(dim=1, keepdim=True)) / (grouped.std(dim=1, keepdim=True) + eps)).view(-1)


# -- the critic -----------------------------------------------------------------------------------------------------


class ValueHead(nn.Module):
    """The critic: V(s_t) = w·h_t + b, one linear layer on the policy's last hidden state h_t at every token (trl's
    old AutoModelForCausalLMWithValueHead). A head on the policy's own body rather than a second model (InstructGPT's
    critic was a copy of the reward model): one forward pass gives both the next-token logits and the values, and
    there is one network to copy. The price: the value loss also moves the shared body, hence vf_coef."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)  # V = 0 everywhere at first: the same start for every seed
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden).squeeze(-1)


# -- the settings -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPOConfig:
    """One PPO run. Field help texts are the page's slider help."""

    # Measured on tiny-sft with the bundled unbiased reward model, 1 torch thread, seeds 0-2, answers sampled for the
    # 96 questions of the held-out pairs (also the RL prompts; 4 answers each) before and after: these defaults take
    # 18-21 s of CPU and move the mean score -0.72 -> -0.14 / 0.11 / -0.06 and correctness 81% -> 82-85%, at KL
    # 0.4-0.75 nats per answer. 4 epochs x 30 batches: score -0.12 / -0.53 / -0.36, correctness 79-85%; with 4 mini-
    # batches or β = 0.5 (seed 0) 77-79%. A value head at the policy's learning rate (head_lr_scale 1; 4 epochs x 30)
    # took the sampled answers from 85% to 43% right.

    beta: float = field(
        default=1.0,
        metadata={
            "help": "KL coefficient β: each answer token is charged β·(log π − log π_ref) nats. As in the RLOO run, "
            "reward-model scores are several units, so a small β (trl's 0.05) barely holds the policy back."
        },
    )
    max_steps: int = field(default=45, metadata={"help": "Rollout batches: each samples new answers, then trains."})
    learning_rate: float = field(
        default=1e-4, metadata={"help": "AdamW step size for the policy and its value head (the RLOO run's)."}
    )
    head_lr_scale: float = field(
        default=100.0,
        metadata={
            "help": "The value head learns this many times faster than the policy. It starts at V = 0 while scores "
            "differ by several units between questions; at the policy's pace it never catches up, and the policy "
            "then learns which questions score high instead of which answers do."
        },
    )
    prompts_per_step: int = field(default=8, metadata={"help": "Questions per rollout batch."})
    num_generations: int = field(
        default=8,
        metadata={
            "help": "Answers sampled per question: the same batch as RLOO/GRPO, which need a group per question."
        },
    )
    max_completion_length: int = field(default=24, metadata={"help": "Longest answer sampled, in tokens."})
    ppo_epochs: int = field(
        default=2, metadata={"help": "Passes over each rollout batch: PPO reuses its samples, the clip keeps it safe."}
    )
    mini_batches: int = field(default=2, metadata={"help": "Optimizer steps per epoch (the batch is split)."})
    clip: float = field(
        default=0.2, metadata={"help": "ε: how far π_new/π_old may move per batch before its gradient stops."}
    )
    value_clip: float = field(
        default=0.2, metadata={"help": "ε_v: how far a value may move from its rollout value per batch."}
    )
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss (trl's 0.1)."})
    gamma: float = field(
        default=1.0, metadata={"help": "Discount γ per token (1: the score counts fully at every token)."}
    )
    lam: float = field(
        default=0.95, metadata={"help": "GAE's λ: 0 trusts the critic (one step), 1 the sampled return."}
    )
    reward: str = field(
        default="reward model",
        metadata={"help": "What the policy maximises: the reward model's score, or verifiable correctness."},
    )
    sample_every: int = field(default=10, metadata={"help": "Keep sample answers every this many steps."})
    seed: int = 0

    def check(self) -> None:
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise PPOInputError(f"The KL coefficient β must be a finite number ≥ 0 (got {self.beta}).")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0 and 0 < self.head_lr_scale < math.inf):
            raise PPOInputError("The learning rate and the value head's scale must be positive numbers.")
        counts = ("max_steps", "prompts_per_step", "num_generations", "max_completion_length", "ppo_epochs")
        for name in (*counts, "mini_batches", "sample_every"):
            if getattr(self, name) < 1:
                raise PPOInputError(f"{name} must be at least 1 (got {getattr(self, name)}).")
        if self.mini_batches > self.prompts_per_step * self.num_generations:
            raise PPOInputError("More mini-batches than answers per batch: lower mini_batches.")
        for name in ("clip", "value_clip"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise PPOInputError(f"{name} must be a positive number (got {getattr(self, name)}).")
        if not (math.isfinite(self.vf_coef) and self.vf_coef >= 0):
            raise PPOInputError(f"vf_coef must be a number ≥ 0 (got {self.vf_coef}).")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise PPOInputError(f"γ and λ must lie in [0, 1] (got γ = {self.gamma}, λ = {self.lam}).")
        if self.reward not in REWARDS:
            raise PPOInputError(f"reward must be one of {REWARDS} (got {self.reward!r}).")


# -- rollouts -----------------------------------------------------------------------------------------------------


@dataclass
class Answers:
    """One answer to each prompt, as the token rows `forward` reads (tensors (B, T) unless said)."""

    prompts: list[str]  # (B,)
    completions: list[str]  # (B,) the answers' text, without the end-of-text token
    input_ids: torch.Tensor  # (B, P + T) left-padded prompt, then the answer (padded after its end-of-text token)
    attention_mask: torch.Tensor  # (B, P + T)
    answer_ids: torch.Tensor  # (B, T)
    mask: torch.Tensor  # 1.0 on answer tokens, up to and including the end-of-text token
    true: torch.Tensor  # (B,) correctness, 1.0 or 0.0

    def token_lists(self) -> list[list[int]]:
        """Each answer's tokens, its end-of-text token included (if it has one)."""
        return [row[: int(n)].tolist() for row, n in zip(self.answer_ids, self.mask.sum(dim=1), strict=True)]


@dataclass
class Rollout(Answers):
    """One batch of sampled answers and everything PPO computes on it before training (tensors (B, T) unless said).
    In run_ppo, `prompts` holds each prompt num_generations times, in a row."""

    scores: torch.Tensor  # (B,) what the policy maximises: reward-model score or correctness
    logp: torch.Tensor  # log π_old(y_t): the policy that sampled the answers
    ref_logp: torch.Tensor  # log π_ref(y_t): the SFT model
    values: torch.Tensor  # V_old(s_t)
    advantages: torch.Tensor  # GAE, raw (in reward units)
    returns: torch.Tensor


def forward(
    model: PreTrainedModel, head: ValueHead | None, input_ids: torch.Tensor, attention_mask: torch.Tensor, width: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(y_t) (B, T) of the answer tokens, which start at column `width` of `input_ids`, and the values V(s_t)
    (None without a head). Position P − 1 + t reads the prompt and y_<t and predicts y_t: that is the state s_t."""
    position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)  # left padding: positions start at the prompt
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        output_hidden_states=head is not None,
    )
    logp = token_logps(out.logits[:, width - 1 : -1], input_ids[:, width:])
    values = head(out.hidden_states[-1][:, width - 1 : -1]) if head is not None else None
    return logp, values


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The padding token (the end-of-text token for a tokenizer without one; padding is masked out anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def left_padded(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts' tokens (B, P), padded on the left so that every answer starts at column P, and their mask."""
    pad = pad_id(tokenizer)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    width = max(len(ids) for ids in encoded)
    prompt_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    prompt_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    return prompt_ids, prompt_mask


def pack(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], answers: Sequence[list[int]], device) -> Answers:
    """Prompts and their answers' tokens (each up to and including its end-of-text token, or cut at the length
    limit) as one batch: left-padded prompts, then right-padded answers."""
    pad = pad_id(tokenizer)
    eos = tokenizer.eos_token_id
    prompts = list(prompts)
    prompt_ids, prompt_mask = left_padded(tokenizer, prompts, device)
    length = max(len(a) for a in answers)
    answer_ids = torch.tensor([a + [pad] * (length - len(a)) for a in answers], device=device)
    kept = torch.tensor([[1] * len(a) + [0] * (length - len(a)) for a in answers], device=device)
    completions = [tokenizer.decode([t for t in a if t != eos], skip_special_tokens=True) for a in answers]
    true = torch.tensor([true_reward(p, c) for p, c in zip(prompts, completions, strict=True)])
    return Answers(
        prompts, completions, torch.cat([prompt_ids, answer_ids], dim=1), torch.cat([prompt_mask, kept], dim=1),
        answer_ids, kept.float(), true,
    )  # fmt: skip


@torch.no_grad()
def sample(
    policy: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_completion_length: int
) -> Answers:
    """Step 1 without the scores: one answer to each prompt (repeat a prompt for several), sampled from `policy` at
    temperature 1 with no top-k, from torch's global generator (fork it around the call), each answer cut after its
    first end-of-text token."""
    eos = tokenizer.eos_token_id
    device = next(policy.parameters()).device
    prompt_ids, prompt_mask = left_padded(tokenizer, prompts, device)
    width = prompt_ids.shape[1]
    max_new = min(max_completion_length, context_limit(policy) - width)
    if max_new < 1:
        raise PPOInputError("A prompt fills the model's whole context window: shorten it.")
    out = policy.generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        do_sample=True,
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        max_new_tokens=max_new,
        pad_token_id=pad_id(tokenizer),
        eos_token_id=eos,
    )
    rows = [row.tolist() for row in out[:, width:]]
    return pack(tokenizer, prompts, [row[: row.index(eos) + 1] if eos in row else row for row in rows], device)


@torch.no_grad()
def make_rollout(
    policy: PreTrainedModel,
    head: ValueHead,
    ref_model: PreTrainedModel,
    answers: Answers,
    scores: torch.Tensor,
    cfg: PPOConfig,
) -> Rollout:
    """Steps 2-3 on answers and their scores (B,): log-probabilities under the policy and the reference, the
    critic's values, the per-token rewards, advantages and returns."""
    width = answers.input_ids.shape[1] - answers.answer_ids.shape[1]
    logp, values = forward(policy, head, answers.input_ids, answers.attention_mask, width)
    ref_logp, _ = forward(ref_model, None, answers.input_ids, answers.attention_mask, width)
    rewards = per_token_rewards(scores.to(logp.device), logp, ref_logp, answers.mask, cfg.beta)
    advantages, returns = gae(rewards, values, answers.mask, cfg.gamma, cfg.lam)
    fields = {f.name: getattr(answers, f.name) for f in dataclasses.fields(Answers)}
    return Rollout(
        **fields, scores=scores, logp=logp, ref_logp=ref_logp, values=values * answers.mask,
        advantages=advantages, returns=returns,
    )  # fmt: skip


@torch.no_grad()
def collect(
    policy: PreTrainedModel,
    head: ValueHead,
    sft: LoadedModel,
    reward_model: PreTrainedModel | None,
    prompts: Sequence[str],
    cfg: PPOConfig,
) -> Rollout:
    """Sample cfg.num_generations answers to each prompt from `policy` (temperature 1, no top-k), score them, and
    compute the per-token rewards, advantages and returns (steps 1-3 of the module docstring)."""
    prompts = [p for p in prompts for _ in range(cfg.num_generations)]
    answers = sample(policy, sft.tokenizer, prompts, cfg.max_completion_length)
    if reward_model is None:
        scores = answers.true.clone()
    else:
        scores = score(reward_model, sft.tokenizer, answers.prompts, answers.completions)
    if not torch.isfinite(scores).all():
        raise DivergedError("The reward became NaN: the reward model has diverged. Lower its learning rate.")
    return make_rollout(policy, head, sft.model, answers, scores, cfg)


# -- training -------------------------------------------------------------------------------------------------------

MAX_GRAD_NORM = 1.0  # the transformers Trainer's default, which the RLOO run uses too


def ppo_update(
    policy: PreTrainedModel,
    head: ValueHead,
    optimizer: torch.optim.Optimizer,
    batch: Rollout,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Step 4: cfg.ppo_epochs passes over one rollout batch, each in cfg.mini_batches shuffled mini-batches of
    answers. Advantages are whitened over the whole batch first (trl did). Returns the mean losses and statistics."""
    advantages = whiten(batch.advantages, batch.mask)
    width = batch.input_ids.shape[1] - batch.answer_ids.shape[1]
    parameters = [*policy.parameters(), *head.parameters()]
    stats: list[list[float]] = []
    for _ in range(cfg.ppo_epochs):
        for rows in torch.randperm(len(batch.prompts), generator=generator).chunk(cfg.mini_batches):
            mask = batch.mask[rows]
            logp, values = forward(policy, head, batch.input_ids[rows], batch.attention_mask[rows], width)
            pg_loss, clip_fraction = policy_loss(logp, batch.logp[rows], advantages[rows], mask, cfg.clip)
            vf_loss = value_loss(values, batch.values[rows], batch.returns[rows], mask, cfg.value_clip)
            loss = pg_loss + cfg.vf_coef * vf_loss
            if not torch.isfinite(loss):
                raise DivergedError("The PPO loss became NaN: the learning rate is too high. Lower it and start again.")
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, MAX_GRAD_NORM)
            optimizer.step()
            moved = approx_kl(logp.detach(), batch.logp[rows], mask)
            stats.append([loss.item(), pg_loss.item(), vf_loss.item(), clip_fraction.item(), moved.item()])
    names = ("loss", "policy_loss", "value_loss", "clip_fraction", "approx_kl")
    return dict(zip(names, np.mean(stats, axis=0).tolist(), strict=True))


def critic_and_optimizer(policy: PreTrainedModel, cfg: PPOConfig) -> tuple[ValueHead, torch.optim.Optimizer]:
    """A fresh value head on `policy` and one AdamW for both (the head at head_lr_scale × the learning rate).
    The head's construction draws from torch's global generator (its values are then zeroed)."""
    head = ValueHead(policy.config.hidden_size).to(policy.device)
    head_lr = cfg.learning_rate * cfg.head_lr_scale
    groups = [{"params": policy.parameters()}, {"params": head.parameters(), "lr": head_lr}]
    return head, torch.optim.AdamW(groups, lr=cfg.learning_rate, weight_decay=0.0)


@dataclass
class PPORun:
    config: PPOConfig
    history: list[dict]  # one dict per rollout batch, with the keys of rlhf.run_rl's history (see run_ppo)
    seconds: float
    policy: PreTrainedModel
    value_head: ValueHead


def run_ppo(sft: LoadedModel, reward: RewardRun | None, cfg: PPOConfig, job: Job | None = None, prompts=None) -> PPORun:
    """PPO from a copy of the SFT model (`sft.model` stays untouched: it is π_ref). `reward` is the reward model
    (needed unless cfg.reward == "correctness"); `prompts` default to rlhf.rl_prompts(). With a `job`, every step's
    metrics go to `job.log`, sample answers to `job.note` (rlhf.SampledAnswers), and `job.should_stop` ends the run
    after the current step. Deterministic for a given cfg.seed."""
    cfg.check()
    if cfg.reward == "reward model" and reward is None:
        raise PPOInputError("This run needs a reward model: train one first, or choose the correctness reward.")
    start = time.perf_counter()
    reward_model = reward.model if cfg.reward == "reward model" else None
    prompts = list(prompts or rl_prompts())
    order = random.Random(cfg.seed)
    queue: list[str] = []
    history: list[dict] = []
    with torch.random.fork_rng(devices=[]):  # generate() samples from torch's global generator
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)  # mini-batch order
        # Dropout off (eval mode): before the first update π_new must equal π_old exactly (tiny-sft has none anyway).
        policy = trainable_copy(sft).eval()
        head, optimizer = critic_and_optimizer(policy, cfg)
        for step in range(cfg.max_steps):
            if job is not None and job.should_stop:
                break
            while len(queue) < cfg.prompts_per_step:  # each prompt once per epoch over the prompts, shuffled
                queue += order.sample(prompts, len(prompts))
            batch_prompts, queue = queue[: cfg.prompts_per_step], queue[cfg.prompts_per_step :]
            try:
                batch = collect(policy, head, sft, reward_model, batch_prompts, cfg)
            except RuntimeError as err:
                if "probability tensor" in str(err):  # sampling from a policy whose logits became NaN/inf
                    raise DivergedError("The policy diverged (NaN probabilities): lower the learning rate.") from err
                raise
            row = {"step": step + 1, "beta": cfg.beta, **rollout_metrics(batch)}
            row |= ppo_update(policy, head, optimizer, batch, cfg, generator)
            history.append(row)
            if job is not None:
                job.log(**row)
                if step % cfg.sample_every == 0 or step == cfg.max_steps - 1:
                    picks = range(0, len(batch.prompts), cfg.num_generations)  # one answer per question
                    samples = [(batch.prompts[i], batch.completions[i], float(batch.scores[i]), bool(batch.true[i]))
                               for i in picks]  # fmt: skip
                    job.note(SampledAnswers(step, cfg.beta, samples))
    policy.requires_grad_(False)
    head.eval().requires_grad_(False)
    return PPORun(config=cfg, history=history, seconds=time.perf_counter() - start, policy=policy, value_head=head)


def rollout_metrics(batch: Rollout) -> dict[str, float]:
    """What a rollout batch says about the policy that sampled it (the keys rlhf.run_rl logs)."""
    mean_score = float(batch.scores.mean())
    return {
        "reward": mean_score,
        "rewards/judge/mean": mean_score,
        "true_reward": float(batch.true.mean()),
        "kl_seq": float(kl_k1(batch.logp, batch.ref_logp, batch.mask).mean()),  # nats per answer
        "kl_k3": float(kl_k3(batch.logp, batch.ref_logp, batch.mask).mean()),
        "completions/mean_length": float(batch.mask.sum(dim=1).mean()),  # tokens, end-of-text included
        "padding": float(np.mean([padding_level(c) for c in batch.completions])),
    }


@dataclass(frozen=True)
class AdvantageView:
    """One batch of answers to one prompt and the advantage each algorithm gives each answer."""

    prompt: str
    completions: list[str]
    scores: list[float]  # reward-model score (or correctness)
    kl: list[float]  # k1 per answer, nats
    value: list[float]  # the critic's V(prompt): the return it expects before the answer's first token
    ppo: list[float]  # GAE advantage at the answer's first token, raw: ≈ (score − β·KL) − V(prompt)
    rloo: list[float]  # (score − β·KL) − mean over the other answers (trl's RLOOTrainer puts the KL in the reward)
    grpo: list[float]  # (score − mean) / std over the answers (GRPO puts its KL in the loss, not the reward)


def answer_advantages(
    run: PPORun, sft: LoadedModel, reward: RewardRun | None, prompt: str, seed: int = 0
) -> AdvantageView:
    """Sample run.config.num_generations answers to `prompt` from the run's policy and give each answer's advantage
    under PPO, RLOO and GRPO. PPO's advantage is per token; the number shown per answer is A at its first token
    (before whitening, in reward units): with γ = λ = 1 it is exactly the answer's reward minus the critic's V(prompt)."""
    cfg = run.config
    reward_model = reward.model if cfg.reward == "reward model" and reward is not None else None
    if cfg.reward == "reward model" and reward_model is None:
        raise PPOInputError("This run was trained on a reward model: pass it.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        batch = collect(run.policy, run.value_head, sft, reward_model, [prompt], cfg)
    kl = kl_k1(batch.logp, batch.ref_logp, batch.mask)
    return AdvantageView(
        prompt=prompt,
        completions=batch.completions,
        scores=batch.scores.tolist(),
        kl=kl.tolist(),
        value=batch.values[:, 0].tolist(),
        ppo=batch.advantages[:, 0].tolist(),
        rloo=rloo_advantages(batch.scores - cfg.beta * kl, cfg.num_generations).tolist(),
        grpo=grpo_advantages(batch.scores, cfg.num_generations).tolist(),
    )


# -- the card's API -------------------------------------------------------------------------------------------------


class PPOTrainer:
    """The card's `PPOTrainer(config=PPOConfig(...), model=sft_model, tokenizer=tok)` with its `generate(prompts)` and
    `step(prompts, responses, scores)` (trl's API before 0.12), over the same functions as run_ppo: the caller's
    loop samples, scores and steps. It trains `model` itself, in place (as trl's did), with a value head of its own
    (`value_head`); the reference π_ref is `ref_model`, or else a frozen deep copy of `model` taken here.

    From the config it uses beta, learning_rate, head_lr_scale, max_completion_length, ppo_epochs, mini_batches,
    the clips, vf_coef, gamma, lam and seed; not max_steps, prompts_per_step, num_generations, reward or
    sample_every: a batch is whatever the caller passes (repeat a prompt to sample several answers to it).

        ppo = PPOTrainer(config=PPOConfig(), model=model, tokenizer=tok)
        responses = ppo.generate(prompts)                 # one answer per prompt
        stats = ppo.step(prompts, responses, scores)      # one PPO update: rollout_metrics + ppo_update's stats
    """

    def __init__(
        self,
        config: PPOConfig,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        ref_model: PreTrainedModel | None = None,
    ):
        config.check()
        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.ref_model = copy.deepcopy(model) if ref_model is None else ref_model
        self.ref_model.eval().requires_grad_(False)
        # Dropout off (eval mode), as in run_ppo: before an update π_new must equal π_old exactly.
        model.eval().requires_grad_(True)
        with torch.random.fork_rng(devices=[]):  # the server's other sessions share torch's global generator
            torch.manual_seed(config.seed)
            self.value_head, self.optimizer = critic_and_optimizer(model, config)
            self._sampling_state = torch.get_rng_state()  # generate()'s own stream, continued call after call
        self.generator = torch.Generator().manual_seed(config.seed)  # mini-batch order
        self._sampled: dict[tuple[str, str], list[int]] = {}  # the last generate()'s tokens, by (prompt, answer)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """One answer sampled for each prompt (temperature 1, at most config.max_completion_length tokens), as text
        without the end-of-text token. Deterministic for a given seed and sequence of calls."""
        prompts = list(prompts)
        if not prompts:
            return []
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._sampling_state)
            answers = sample(self.model, self.tokenizer, prompts, self.config.max_completion_length)
            self._sampling_state = torch.get_rng_state()
        tokens = answers.token_lists()
        self._sampled = {(p, c): t for p, c, t in zip(prompts, answers.completions, tokens, strict=True)}
        return answers.completions

    def _answer_tokens(self, prompt: str, response: str) -> list[int]:
        """The tokens the last generate() sampled for this answer (its end-of-text token too, unless it was cut at
        the length limit); any other text is tokenized and ended with the end-of-text token."""
        if (prompt, response) in self._sampled:
            return self._sampled[prompt, response]
        return [*self.tokenizer(response, add_special_tokens=False)["input_ids"], self.tokenizer.eos_token_id]

    def step(self, prompts: Sequence[str], responses: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
        """One PPO update on these answers and their scores (higher is better): per-token rewards with the β·KL
        charge, GAE with the value head, then config.ppo_epochs × config.mini_batches clipped updates. Returns the
        batch's rollout_metrics and ppo_update's mean losses and statistics."""
        prompts, responses = list(prompts), list(responses)
        if not len(prompts) == len(responses) == len(scores):
            raise PPOInputError("step() needs one response and one score per prompt.")
        if len(prompts) < self.config.mini_batches:
            raise PPOInputError(
                f"A batch of {len(prompts)} answers cannot fill {self.config.mini_batches} mini-batches."
            )
        rewards = torch.tensor([float(s) for s in scores])
        if not torch.isfinite(rewards).all():
            raise PPOInputError("Every score must be a finite number.")
        tokens = [self._answer_tokens(p, r) for p, r in zip(prompts, responses, strict=True)]
        device = next(self.model.parameters()).device
        answers = pack(self.tokenizer, prompts, tokens, device)
        if answers.input_ids.shape[1] > context_limit(self.model):
            raise PPOInputError("A prompt and its response do not fit in the model's context window: shorten them.")
        batch = make_rollout(self.model, self.value_head, self.ref_model, answers, rewards, self.config)
        stats = rollout_metrics(batch)
        return stats | ppo_update(self.model, self.value_head, self.optimizer, batch, self.config, self.generator)
