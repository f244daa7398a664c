"""DPO on a real tiny model: the loss drawn, the implicit reward of one pair, trl's DPOTrainer run live, a β sweep.

Follows Rafailov et al. 2023 ("Your Language Model is Secretly a Reward Model") and trl 1.16's `DPOTrainer`
with its default `loss_type="sigmoid"`. For a pair (prompt x, chosen y_w, rejected y_l):

    Δ_w = log π(y_w|x) − log π_ref(y_w|x)          # log-ratio of the chosen answer (nats)
    Δ_l = log π(y_l|x) − log π_ref(y_l|x)          # log-ratio of the rejected answer
    margin = Δ_w − Δ_l
    loss = −log σ(β · margin)                      # dpo_loss
    ∂loss/∂margin = −β · σ(−β · margin)            # σ(−β·margin) = dpo_gradient_weight
    implicit reward r(x, y) = β · log π(y|x)/π_ref(y|x)

Log-probs are summed over the answer's tokens (and its end-of-text token), tokenized exactly as trl does, so
`score_pairs(...)` reproduces trl's logged `loss`, `rewards/*` and `logps/*` for the same batch
(tests/test_dpo.py checks it). `drift_from_reference` measures the drift β is meant to limit: the exact
per-token KL(π ‖ π_ref) summed along answers sampled from π. The page (pages/4_DPO.py) runs the `*_work`
functions in background `Job`s: `dpo_work` (one live run), `sweep_work` (one run per β),
`annotator_work` (one run per labeller) and `rlhf_frontier_work` (the RLHF page's pipeline, scored alike).

    run = train_dpo(start, train_pairs, DPOSettings(beta=0.1, steps=50))   # start: a LoadedModel (tiny-sft)
    report = compare_on("held-out", run.policy, run.reference, start.tokenizer, heldout_pairs, true_reward)
    report.accuracy_after, report.kl, report.reward_after     # e.g. 0.6, 0.3 nats, 0.85
"""

from __future__ import annotations

import copy
import csv
import functools
import hashlib
import io
import json
import math
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.jobs import DivergedError, Job, JobCallback, TaggedJob
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit
from llmlab.preferences import question_text
from llmlab.trainargs import demo_trainer_args

Pair = Mapping[str, Any]  # {"prompt", "chosen", "rejected"}: strings, or chat messages as trl accepts them
RewardFn = Callable[[str, str], float]  # (prompt text, answer text) -> the preference data's true reward

BETA_CHOICES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0)  # the page's log slider
SWEEP_BETAS = (0.01, 0.05, 0.1, 0.5, 1.0)
# Pairs per step in the β sweep: half the live run's 8, so 5 β × 150 steps take ~70 s instead of ~100 s on 2
# cores. Adam's step size does not depend on the batch, so the drift per step (what β limits) is alike;
# measured at 150 steps, lr 2e-4: KL 3.75 / 3.25 / 3.07 / 2.22 / 1.78 nats for β 0.01 / 0.05 / 0.1 / 0.5 / 1
# (batch 8: 4.71 / 5.23 / 4.37 / 1.84 / 2.04, noisier and not monotone).
SWEEP_BATCH_SIZE = 4
LOG_KEYS = (  # trl's per-step metrics the live charts draw
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "logps/chosen",
    "logps/rejected",
)


class PairError(ValueError):
    """A preference pair DPO cannot learn from (empty prompt or answer, chosen identical to rejected)."""


class SettingsError(ValueError):
    """A DPO setting out of range (β <= 0, a NaN learning rate, ...); the message says which and why."""


# -- settings ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPOSettings:
    """One DPO run. The `help` texts are the page's slider help, so code and UI say the same thing."""

    beta: float = field(
        default=0.1,
        metadata={
            "help": "β: how strongly the policy is tied to the reference. Small β lets it drift far from the "
            "SFT model to fit the pairs; large β keeps it close. The loss is −log σ(β·margin)."
        },
    )
    steps: int = field(default=50, metadata={"help": "Optimizer steps of DPOTrainer (one batch of pairs each)."})
    learning_rate: float = field(
        default=2e-4,
        metadata={
            "help": "AdamW step size (constant). 1e-4–3e-4 suits this 1M-parameter model; from ~5e-4 the loss "
            "swings wildly and the policy drifts whatever β is, and far above it the weights become NaN."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Preference pairs per step."})
    seed: int = field(default=0, metadata={"help": "Seeds the data order: the same seed gives the same run."})

    def __post_init__(self) -> None:
        problems = settings_problems(self.beta, self.steps, self.learning_rate, self.batch_size)
        if problems:
            raise SettingsError(" ".join(problems))

    @staticmethod
    def help(name: str) -> str:
        return next(f.metadata.get("help", "") for f in fields(DPOSettings) if f.name == name)


def settings_problems(beta: float, steps: int, learning_rate: float, batch_size: int = 8) -> list[str]:
    """Plain-language reasons these values cannot train (empty list: they can)."""
    problems = []
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta > 0):
        problems.append(
            f"β must be a positive number (got {beta!r}): at β = 0 the loss is a constant log 2 and teaches "
            "nothing, and a negative β would reward the rejected answers."
        )
    if not (isinstance(steps, int) and 1 <= steps <= 5000):
        problems.append(f"Steps must be a whole number from 1 to 5000 (got {steps!r}).")
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate) and learning_rate > 0):
        problems.append(f"The learning rate must be a positive number (got {learning_rate!r}).")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        problems.append(f"The batch size must be at least 1 (got {batch_size!r}).")
    return problems


def nearest_beta(beta: float) -> float:
    """The slider choice closest to `beta` on a log scale (β must already be positive)."""
    return min(BETA_CHOICES, key=lambda b: abs(math.log(b) - math.log(beta)))


# -- the loss, drawn ---------------------------------------------------------------------------------------


def dpo_loss(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """−log σ(β·margin), elementwise; margin = Δ_chosen − Δ_rejected in nats. Same formula as trl's "sigmoid"."""
    return -F.logsigmoid(beta * margin)


def dpo_gradient_weight(margin: torch.Tensor, beta: float) -> torch.Tensor:
    """σ(−β·margin): how hard a pair still pushes. ∂loss/∂margin = −β·σ(−β·margin), so a pair the policy already
    ranks right by a wide margin stops contributing, and a wrongly ranked one pushes with nearly full weight."""
    return torch.sigmoid(-beta * margin)


@dataclass(frozen=True)
class LossCurve:
    beta: float
    margins: list[float]  # Δ_chosen − Δ_rejected, nats
    loss: list[float]  # nats
    gradient_weight: list[float]  # σ(−β·margin), 0..1


def loss_curves(
    betas: Sequence[float], margin_range: tuple[float, float] = (-30.0, 30.0), n: int = 241
) -> list[LossCurve]:
    """The loss and gradient weight against the margin, one curve per β (for the loss chart)."""
    margins = torch.linspace(margin_range[0], margin_range[1], n)
    return [
        LossCurve(
            beta=beta,
            margins=margins.tolist(),
            loss=dpo_loss(margins, beta).tolist(),
            gradient_weight=dpo_gradient_weight(margins, beta).tolist(),
        )
        for beta in betas
    ]


# -- tokenization and log-probs, exactly as trl computes them ------------------------------------------------


def is_chat(pair: Pair) -> bool:
    prompt = pair["prompt"]
    return isinstance(prompt, list) and bool(prompt) and isinstance(prompt[0], dict) and "role" in prompt[0]


def prompt_text(pair: Pair) -> str:
    """The user's question as plain text, without chat markers (for tables and reward functions)."""
    return question_text(pair["prompt"])


def answer_text(answer: Any) -> str:
    if isinstance(answer, list):
        return " ".join(m["content"] for m in answer if m.get("role") == "assistant")
    return str(answer)


def check_pair(pair: Pair) -> None:
    """Raise PairError with a plain message if DPO cannot learn from this pair."""
    if not prompt_text(pair).strip():
        raise PairError("The prompt is empty: DPO compares two answers to the same prompt, so type a prompt.")
    chosen, rejected = answer_text(pair["chosen"]), answer_text(pair["rejected"])
    if not chosen.strip() or not rejected.strip():
        raise PairError("An answer is empty: type both a chosen and a rejected answer.")
    if chosen == rejected:
        raise PairError(
            "The chosen and rejected answers are identical: their log-ratios cancel, the margin is always 0 and "
            "the pair teaches nothing (its loss stays at log 2 ≈ 0.693)."
        )


def _ids(tokenizer: PreTrainedTokenizerBase, text_or_messages: Any, add_generation_prompt: bool = False) -> list[int]:
    if isinstance(text_or_messages, list):
        out = tokenizer.apply_chat_template(
            text_or_messages, tokenize=True, return_dict=True, add_generation_prompt=add_generation_prompt
        )
        return list(out["input_ids"])
    return list(tokenizer(text=text_or_messages)["input_ids"])


@dataclass(frozen=True)
class TokenizedPair:
    prompt_ids: list[int]
    chosen_ids: list[int]  # answer tokens only, ending with the end-of-text token
    rejected_ids: list[int]


def tokenize_pair(tokenizer: PreTrainedTokenizerBase, pair: Pair) -> TokenizedPair:
    """trl 1.16's DPO preprocessing: plain-text answers get EOS appended, chat pairs go through the chat
    template, and the answer starts where prompt and prompt+answer tokens first differ."""
    if is_chat(pair):
        prompt = _ids(tokenizer, pair["prompt"], add_generation_prompt=True)
        full_chosen = _ids(tokenizer, pair["prompt"] + pair["chosen"])
        full_rejected = _ids(tokenizer, pair["prompt"] + pair["rejected"])
    else:
        eos = tokenizer.eos_token
        chosen, rejected = str(pair["chosen"]), str(pair["rejected"])
        chosen = chosen if chosen.endswith(eos) else chosen + eos
        rejected = rejected if rejected.endswith(eos) else rejected + eos
        prompt = _ids(tokenizer, pair["prompt"])
        full_chosen = _ids(tokenizer, pair["prompt"] + chosen)
        full_rejected = _ids(tokenizer, pair["prompt"] + rejected)
    n = min(_common_prefix(prompt, full_chosen), _common_prefix(prompt, full_rejected))
    return TokenizedPair(prompt[:n], full_chosen[n:], full_rejected[n:])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def generation_prompt_ids(tokenizer: PreTrainedTokenizerBase, pair: Pair) -> list[int]:
    """The tokens a model sees before it answers this pair's prompt."""
    return _ids(tokenizer, pair["prompt"], add_generation_prompt=is_chat(pair))


def _device(model: PreTrainedModel) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def sequence_logps(
    model: PreTrainedModel,
    prompts: Sequence[list[int]],
    answers: Sequence[list[int]],
    pad_id: int,
    batch_size: int = 64,
) -> torch.Tensor:
    """Σ_t log π(answer_t | prompt, answer_<t) for each (prompt, answer): (N,) float32, nats.

    Sequences are batched by length (answers run from 2 to ~90 tokens), so little compute goes to padding."""
    device = _device(model)
    seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    out = torch.zeros(len(seqs))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(seqs[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)  # -100: not an answer token
        for r, i in enumerate(rows):
            n_prompt, n = len(prompts[i]), len(seqs[i])
            input_ids[r, :n] = torch.tensor(seqs[i])
            attention[r, :n] = 1
            labels[r, n_prompt:n] = input_ids[r, n_prompt:n]
        logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits  # (B, T, V)
        # position t predicts token t+1; cross_entropy is log_softmax + gather in one pass
        token_nll = F.cross_entropy(
            logits[:, :-1].float().transpose(1, 2), labels[:, 1:].to(device), ignore_index=-100, reduction="none"
        )  # (B, T-1)
        out[rows] = -token_nll.sum(dim=1).cpu()
    return out


@dataclass(frozen=True)
class PairScore:
    """Policy and reference log-probs (nats, summed over the answer's tokens) of one pair's two answers."""

    policy_chosen: float
    policy_rejected: float
    reference_chosen: float
    reference_rejected: float
    chosen_tokens: int = 1  # answer length in tokens (with EOS)
    rejected_tokens: int = 1

    @property
    def chosen_logratio(self) -> float:  # Δ_chosen = log π/π_ref of the chosen answer
        return self.policy_chosen - self.reference_chosen

    @property
    def rejected_logratio(self) -> float:
        return self.policy_rejected - self.reference_rejected

    @property
    def margin(self) -> float:
        return self.chosen_logratio - self.rejected_logratio

    def reward_chosen(self, beta: float) -> float:
        """The implicit reward β·log π(y_w|x)/π_ref(y_w|x), as trl logs it in `rewards/chosen`."""
        return beta * self.chosen_logratio

    def reward_rejected(self, beta: float) -> float:
        return beta * self.rejected_logratio

    def loss(self, beta: float) -> float:
        return float(dpo_loss(torch.tensor(self.margin, dtype=torch.float64), beta))

    def gradient_weight(self, beta: float) -> float:
        return float(dpo_gradient_weight(torch.tensor(self.margin, dtype=torch.float64), beta))


def score_pairs(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    batch_size: int = 64,
) -> list[PairScore]:
    """Log-probs of both answers under the policy and the reference, batched; raises PairError on a bad pair."""
    for pair in pairs:
        check_pair(pair)
    tokenized = [tokenize_pair(tokenizer, pair) for pair in pairs]
    limit = context_limit(policy)
    for t in tokenized:
        longest = len(t.prompt_ids) + max(len(t.chosen_ids), len(t.rejected_ids))
        if longest > limit:
            raise PairError(
                f"This pair is {longest} tokens long, but the model reads at most {limit}: shorten the prompt "
                "or the answers."
            )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [t.prompt_ids for t in tokenized] * 2
    answers = [t.chosen_ids for t in tokenized] + [t.rejected_ids for t in tokenized]
    was_training = policy.training
    policy.eval()
    try:
        pol = sequence_logps(policy, prompts, answers, pad, batch_size)
    finally:
        policy.train(was_training)
    ref = sequence_logps(reference, prompts, answers, pad, batch_size) if reference is not policy else pol
    n = len(tokenized)
    return [
        PairScore(
            float(pol[i]),
            float(pol[n + i]),
            float(ref[i]),
            float(ref[n + i]),
            len(tokenized[i].chosen_ids),
            len(tokenized[i].rejected_ids),
        )
        for i in range(n)
    ]


def batch_metrics(scores: Sequence[PairScore], beta: float) -> dict[str, float]:
    """The numbers trl logs for one batch, computed from our own log-probs (same names as trl's keys)."""
    n = len(scores)
    return {
        "loss": sum(s.loss(beta) for s in scores) / n,
        "rewards/chosen": sum(s.reward_chosen(beta) for s in scores) / n,
        "rewards/rejected": sum(s.reward_rejected(beta) for s in scores) / n,
        "rewards/margins": sum(beta * s.margin for s in scores) / n,
        "rewards/accuracies": sum(s.reward_chosen(beta) > s.reward_rejected(beta) for s in scores) / n,
        "logps/chosen": sum(s.policy_chosen for s in scores) / n,
        "logps/rejected": sum(s.policy_rejected for s in scores) / n,
    }


def heldout_accuracy(scores: Sequence[PairScore]) -> float:
    """Preference accuracy: the share of pairs whose implicit reward ranks the chosen answer above the rejected
    one (margin > 0; a tie counts one half), i.e. trl's `rewards/accuracies` on pairs it never trained on.

    The reference ties every pair with itself, so the start model scores exactly 50%: chance. Raw log-probs
    would not do here: they mostly reflect length and phrasing (a padded answer costs hundreds of nats),
    not which answer is right."""
    wins = sum(1.0 if s.margin > 0 else 0.5 if s.margin == 0 else 0.0 for s in scores)
    return wins / max(1, len(scores))


# -- sampling, KL to the reference, true reward --------------------------------------------------------------


@torch.no_grad()
def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[list[int]],
    max_new_tokens: int = 24,
    seed: int = 0,
    greedy: bool = False,
) -> list[list[int]]:
    """Answer tokens (up to and including EOS) for each prompt, sampled at temperature 1 or greedy.

    Our own batched loop with a private torch.Generator: `generate()` would draw from torch's global RNG,
    which other sessions' training threads share."""
    device = _device(model)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    prompts = [list(p)[-(context_limit(model) - max_new_tokens) :] for p in prompt_ids]
    width = max(len(p) for p in prompts)
    n = len(prompts)
    # Left-pad so every row's next token is at the last position; position ids skip the padding.
    ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(p)
        mask[i, width - len(p) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    answers: list[list[int]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    was_training = model.training
    model.eval()
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    step_ids, cache = ids, None
    try:
        for _ in range(max_new_tokens):
            out = model(input_ids=step_ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
            cache = out.cache  # keys/values of everything so far: each step feeds one new token
            logits = out.logits[:, -1].float().cpu()
            if greedy:
                next_ids = logits.argmax(dim=-1)
            else:
                next_ids = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)
            for i in range(n):
                if not done[i]:
                    answers[i].append(int(next_ids[i]))
                    done[i] = int(next_ids[i]) == eos
            if bool(done.all()):
                break
            step_ids = next_ids.to(device).unsqueeze(1)  # (n, 1)
            positions = positions[:, -1:] + 1
            mask = torch.cat([mask, torch.ones((n, 1), dtype=torch.long, device=device)], dim=1)
    finally:
        model.train(was_training)
    return answers


@torch.no_grad()
def per_token_kl(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    prompts: Sequence[list[int]],
    answers: Sequence[list[int]],
    pad_id: int,
) -> torch.Tensor:
    """Σ_t KL(π(·|x, y_<t) ‖ π_ref(·|x, y_<t)) over each answer's positions: (N,) nats per answer.

    With answers sampled from π this is an unbiased, low-variance estimate of the sequence-level
    KL(π ‖ π_ref) that RLHF penalises (the exact per-token KL, summed along the sampled path)."""
    device = _device(policy)
    seqs = [p + a for p, a in zip(prompts, answers, strict=True)]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    predicts_answer = torch.zeros((len(seqs), width), dtype=torch.bool)  # position t predicts an answer token
    for i, (p, s) in enumerate(zip(prompts, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        attention[i, : len(s)] = 1
        predicts_answer[i, len(p) - 1 : len(s) - 1] = True
    ids, attention = ids.to(device), attention.to(device)
    was_training = policy.training
    policy.eval()
    try:
        log_p = torch.log_softmax(policy(input_ids=ids, attention_mask=attention).logits.float(), dim=-1).cpu()
    finally:
        policy.train(was_training)
    log_q = torch.log_softmax(reference(input_ids=ids, attention_mask=attention).logits.float(), dim=-1).cpu()
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)  # (N, T)
    return (kl * predicts_answer).sum(dim=1)


@dataclass(frozen=True)
class DriftReport:
    kl: float  # mean Σ_t KL(π‖π_ref) over sampled answers, nats per answer
    reward: float | None  # mean true reward of the sampled answers (None without a reward function)
    samples: list[tuple[str, str]]  # (prompt, answer) for a few of them


def drift_from_reference(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    reward_fn: RewardFn | None = None,
    seed: int = 0,
    max_new_tokens: int = 24,
) -> DriftReport:
    """Sample one answer per pair's prompt from the policy; KL to the reference and the true reward on them."""
    prompts = [generation_prompt_ids(tokenizer, pair) for pair in pairs]
    answers = sample_answers(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, seed=seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if reference is policy:  # the start model against itself: KL is 0, skip two forward passes
        kl = torch.zeros(len(answers))
    else:
        kl = per_token_kl(policy, reference, prompts, answers, pad)
    texts = [tokenizer.decode(a, skip_special_tokens=True) for a in answers]
    questions = [prompt_text(pair) for pair in pairs]
    reward = None
    if reward_fn is not None:
        reward = sum(reward_fn(q, t) for q, t in zip(questions, texts, strict=True)) / len(texts)
    return DriftReport(kl=float(kl.mean()), reward=reward, samples=list(zip(questions, texts, strict=True))[:8])


def kl_to_reference(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    seed: int = 0,
) -> float:
    """Mean KL(π ‖ π_ref) in nats per answer, on answers the policy samples for these pairs' prompts."""
    return drift_from_reference(policy, reference, tokenizer, pairs, seed=seed).kl


def greedy_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair]) -> list[str]:
    prompts = [generation_prompt_ids(tokenizer, pair) for pair in pairs]
    answers = sample_answers(model, tokenizer, prompts, greedy=True)
    return [tokenizer.decode(a, skip_special_tokens=True) for a in answers]


# -- training with trl -------------------------------------------------------------------------------------


def dpo_config(settings: DPOSettings, output_dir: str, device: str):
    """trl's DPOConfig for a small model on CPU (DESIGN.md's measured settings)."""
    from trl import DPOConfig

    return DPOConfig(
        output_dir=output_dir,
        beta=settings.beta,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=128,  # the tiny models' context
        # The reference is frozen: its log-probs of every pair are computed once, before training (and kept for
        # the next run on the same start model and pairs: reference_logps), not in a forward pass per step.
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=64,
        **demo_trainer_args(device, settings.seed),
    )


# Reference log-probs of pair sets, per shared start model (frozen, so they stay right): a β sweep or the next
# live run on the same pairs skips the reference pass.
_REF_LOGPS: weakref.WeakKeyDictionary[PreTrainedModel, dict[str, tuple[list[float], list[float]]]] = (
    weakref.WeakKeyDictionary()
)
_REF_LOGPS_LOCK = threading.Lock()
_REF_LOGPS_PER_MODEL = 8  # pair sets kept per start model (a few KB each)


def reference_logps(
    start: LoadedModel, reference: PreTrainedModel, pairs: Sequence[Pair]
) -> tuple[list[float], list[float]]:
    """log π_ref(chosen) and log π_ref(rejected) of each pair (nats, summed over the answer), where `reference`
    is a copy of the shared `start.model`. Computed once per start model and pair set, length-sorted in batches
    of 64 (trl's own precompute pads batches in data order: ~3x slower here); trl reads them from the data."""
    digest = hashlib.sha256(json.dumps([dict(p) for p in pairs], sort_keys=True, default=str).encode()).hexdigest()
    with _REF_LOGPS_LOCK:
        cached = _REF_LOGPS.get(start.model, {}).get(digest)
    if cached is not None:
        return cached
    tokenized = [tokenize_pair(start.tokenizer, pair) for pair in pairs]
    tok = start.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    logps = sequence_logps(
        reference,
        [t.prompt_ids for t in tokenized] * 2,
        [t.chosen_ids for t in tokenized] + [t.rejected_ids for t in tokenized],
        pad,
    ).tolist()
    result = (logps[: len(pairs)], logps[len(pairs) :])
    with _REF_LOGPS_LOCK:
        kept = _REF_LOGPS.setdefault(start.model, {})
        kept[digest] = result
        while len(kept) > _REF_LOGPS_PER_MODEL:
            kept.pop(next(iter(kept)))
    return result


@functools.cache
def _trainer_class():
    """trl's DPOTrainer, taking the reference log-probs it precomputes (`precompute_ref_log_probs=True`) from
    `reference_logps` when given: the same numbers (tests/test_dpo.py compares them), kept between runs."""
    from trl import DPOTrainer

    class ReusedReferenceDPOTrainer(DPOTrainer):
        def __init__(self, *args, reference_logps: Callable[[], tuple[list[float], list[float]]] | None, **kwargs):
            self.reference_logps = reference_logps
            super().__init__(*args, **kwargs)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if self.reference_logps is None or name != "train":
                return super()._precompute_ref_logps(dataset, name, batch_size)
            chosen, rejected = self.reference_logps()
            if len(chosen) != len(dataset):  # trl dropped or added rows: let it compute its own
                return super()._precompute_ref_logps(dataset, name, batch_size)
            return dataset.add_column("ref_chosen_logps", chosen).add_column("ref_rejected_logps", rejected)

    return ReusedReferenceDPOTrainer


@dataclass
class DPORun:
    policy: PreTrainedModel  # trained, eval mode
    reference: PreTrainedModel  # frozen copy of the start model
    settings: DPOSettings
    metrics: list[dict[str, float]]  # trl's on_log dicts, one per step
    train_s: float  # wall time of trainer.train()
    steps_done: int


DPO_MODELS_IN_MEMORY = 2  # policy + frozen reference: no reward model, no value model


def train_dpo(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    settings: DPOSettings,
    job: Job | None = None,
) -> DPORun:
    """Run trl's DPOTrainer on a private copy of `start`, with another frozen copy as the reference.

    The reference is passed explicitly: with ref_model=None trl reloads it from `config._name_or_path`,
    which for a copied model may not be the folder we started from. Neither copy touches the shared model.
    A `job` receives every logged step and can stop the run; a NaN loss raises DivergedError."""
    from datasets import Dataset
    from transformers import PrinterCallback

    if not train_pairs:
        raise PairError("There are no preference pairs to train on.")
    for pair in train_pairs:
        check_pair(pair)
    policy = trainable_copy(start)
    reference = copy.deepcopy(start.model).eval().requires_grad_(False)
    log = _MetricsLog(job)
    with tempfile.TemporaryDirectory(prefix="llmlab-dpo-") as out:
        trainer = _trainer_class()(
            model=policy,
            reference_logps=lambda: reference_logps(start, reference, train_pairs),
            ref_model=reference,
            args=dpo_config(settings, out, start.device),
            train_dataset=Dataset.from_list([dict(p) for p in train_pairs]),
            processing_class=start.tokenizer,
            callbacks=[log],
        )
        trainer.remove_callback(PrinterCallback)  # keep the server log quiet
        started = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - started
    policy.eval().requires_grad_(False)
    if not all(bool(torch.isfinite(p).all()) for p in policy.parameters()):
        raise DivergedError("The weights became NaN or infinite: the learning rate is too high. Lower it and retry.")
    return DPORun(policy, reference, settings, log.metrics, train_s, trainer.state.global_step)


class _MetricsLog(JobCallback):
    """JobCallback that also keeps its own list (a run without a Job still gets its metrics)."""

    def __init__(self, job: Job | None):
        super().__init__(job or Job("dpo-untracked", lambda job: None))
        self.metrics: list[dict[str, float]] = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # A diverging DPO run can make the weights NaN while the logged loss still reads 0.0 (the
        # margin is ±inf): check the weights themselves (~1 ms for a 1M-parameter model).
        if model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            raise DivergedError(
                f"The weights became NaN or infinite at step {state.global_step}: the learning rate is too high. "
                "Lower it and start again."
            )
        return super().on_step_end(args, state, control, **kwargs)

    def on_log(self, args, state, control, logs=None, **kwargs):
        control = super().on_log(args, state, control, logs=logs, **kwargs)
        if logs and "train_runtime" not in logs:
            self.metrics.append({k: float(v) for k, v in logs.items() if isinstance(v, (int, float))})
        return control


# -- what the page runs in background jobs -------------------------------------------------------------------


def unique_prompts(pairs: Sequence[Pair]) -> list[Pair]:
    """One pair per distinct prompt, in order: sampling-based measures count each question once."""
    seen: dict[str, Pair] = {}
    for pair in pairs:
        seen.setdefault(repr(pair["prompt"]), pair)
    return list(seen.values())


@dataclass(frozen=True)
class SplitReport:
    """The start model (= reference) against the trained policy on one set of held-out pairs."""

    name: str
    accuracy_before: float  # heldout_accuracy of the reference
    accuracy_after: float  # heldout_accuracy of the policy
    kl: float  # KL(π‖π_ref) on answers sampled for these pairs' prompts, nats per answer
    reward_before: float | None  # true reward of answers sampled from the reference
    reward_after: float | None  # ... and from the policy
    logp_chosen: tuple[float, float] = (0.0, 0.0)  # mean log π(chosen) of the pairs, (reference, policy), nats
    logp_rejected: tuple[float, float] = (0.0, 0.0)  # mean log π(rejected), (reference, policy)


def compare_on(
    name: str,
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    reward_fn: RewardFn | None = None,
    seed: int = 0,
) -> SplitReport:
    """Held-out preference accuracy, KL and true reward of `policy` against its `reference` on these pairs."""
    prompts = unique_prompts(pairs)
    scores = score_pairs(policy, reference, tokenizer, pairs)
    drift = drift_from_reference(policy, reference, tokenizer, prompts, reward_fn, seed)
    reward_before = None
    if reward_fn is not None:
        reward_before = drift_from_reference(reference, reference, tokenizer, prompts, reward_fn, seed).reward
    n = len(scores)
    return SplitReport(
        name=name,
        accuracy_before=0.5,  # heldout_accuracy of the reference against itself: every margin is 0
        accuracy_after=heldout_accuracy(scores),
        kl=drift.kl,
        reward_before=reward_before,
        reward_after=drift.reward,
        logp_chosen=(sum(s.reference_chosen for s in scores) / n, sum(s.policy_chosen for s in scores) / n),
        logp_rejected=(sum(s.reference_rejected for s in scores) / n, sum(s.policy_rejected for s in scores) / n),
    )


@dataclass
class DPOOutcome:
    """A finished live run: the trained policy (kept for the other tabs) and its before/after evaluation."""

    run: DPORun
    heldout: SplitReport  # policy vs start model on held-out pairs
    answers: list[dict[str, str]]  # question, before, after (greedy)
    wall_s: float  # the whole job: training plus evaluation


def dpo_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    heldout_pairs: Sequence[Pair],
    settings: DPOSettings,
    reward_fn: RewardFn | None = None,
    answer_questions: int = 6,
) -> Callable[[Job], DPOOutcome]:
    """The live run as a Job's work function: train, then compare policy and start model on held-out pairs."""

    def work(job: Job) -> DPOOutcome:
        started = time.perf_counter()
        run = train_dpo(start, train_pairs, settings, job)
        tok = start.tokenizer
        heldout = compare_on("held-out pairs", run.policy, run.reference, tok, heldout_pairs, reward_fn)
        shown = unique_prompts(heldout_pairs)[:answer_questions]
        answers = [
            {"question": prompt_text(p), "before (start model)": b, "after DPO": a}
            for p, b, a in zip(
                shown, greedy_answers(run.reference, tok, shown), greedy_answers(run.policy, tok, shown), strict=True
            )
        ]
        return DPOOutcome(run=run, heldout=heldout, answers=answers, wall_s=time.perf_counter() - started)

    return work


@dataclass
class CoverageOutcome:
    """A run trained only on some groups of questions, scored on held-out pairs of every group."""

    run: DPORun
    covered: tuple[str, ...]  # the groups the training pairs came from
    train_pairs: int
    reports: list[SplitReport]  # one per group, named after it


def coverage_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    eval_pairs: Sequence[Pair],
    settings: DPOSettings,
    group_of: Callable[[Pair], str],
    covered: Sequence[str],
    reward_fn: RewardFn | None = None,
) -> Callable[[Job], CoverageOutcome]:
    """The offline limit as a Job's work function: DPO on the pairs of the `covered` groups only (e.g. capital
    questions), then held-out accuracy, KL and true reward per group. DPO never samples its own answers, so
    on groups its pairs do not reach nothing steers it: whatever moves there is a side effect."""
    subset = [p for p in train_pairs if group_of(p) in covered]
    if not subset:
        raise PairError("No training pair is about the chosen kind of question: pick at least one kind.")

    def work(job: Job) -> CoverageOutcome:
        run = train_dpo(start, subset, settings, job)
        groups = list(dict.fromkeys(group_of(p) for p in eval_pairs))
        reports = [
            compare_on(
                group,
                run.policy,
                run.reference,
                start.tokenizer,
                [p for p in eval_pairs if group_of(p) == group],
                reward_fn,
            )
            for group in groups
        ]
        return CoverageOutcome(run=run, covered=tuple(covered), train_pairs=len(subset), reports=reports)

    return work


@dataclass(frozen=True)
class SweepPoint:
    beta: float
    steps: int  # steps actually run
    learning_rate: float
    seed: int
    heldout_accuracy: float  # share of held-out pairs the policy's implicit reward ranks right
    reference_accuracy: float  # the same for the start model (0.5: it ties every pair)
    kl: float  # KL(π‖π_ref), nats per sampled answer
    reward: float | None  # mean true reward of answers sampled from the policy
    reference_reward: float | None  # ... and from the start model
    final_loss: float
    logp_chosen_start: float  # trl's logps/chosen at the first and last step (nats per answer)
    logp_chosen_end: float
    train_s: float
    wall_s: float  # training + evaluation of this β

    def row(self) -> dict[str, Any]:
        return asdict(self)


def sweep_work(
    start: LoadedModel,
    train_pairs: Sequence[Pair],
    heldout_pairs: Sequence[Pair],
    settings: DPOSettings,
    betas: Sequence[float] = SWEEP_BETAS,
    reward_fn: RewardFn | None = None,
) -> Callable[[Job], list[SweepPoint]]:
    """The β sweep as a Job's work function: one DPO run per β, same seed, data and steps.

    Each step is logged with its β (`job.log(beta=..., step=..., loss=...)`) so the page can show progress;
    each finished β is a `job.note(point=SweepPoint)`. Stop ends the sweep after the current step."""
    for beta in betas:  # fail before any training, not at the third β
        problems = settings_problems(beta, settings.steps, settings.learning_rate, settings.batch_size)
        if problems:
            raise SettingsError(" ".join(problems))

    def work(job: Job) -> list[SweepPoint]:
        points: list[SweepPoint] = []
        for beta in betas:
            if job.should_stop:
                break
            started = time.perf_counter()
            run_settings = DPOSettings(
                beta=beta,
                steps=settings.steps,
                learning_rate=settings.learning_rate,
                batch_size=settings.batch_size,
                seed=settings.seed,
            )
            run = train_dpo(start, train_pairs, run_settings, TaggedJob(job, beta=beta))
            if job.should_stop and run.steps_done < settings.steps:
                break  # a half-trained β would be a misleading point
            report = compare_on("held-out pairs", run.policy, run.reference, start.tokenizer, heldout_pairs, reward_fn)
            point = SweepPoint(
                beta=beta,
                steps=run.steps_done,
                learning_rate=settings.learning_rate,
                seed=settings.seed,
                heldout_accuracy=report.accuracy_after,
                reference_accuracy=report.accuracy_before,
                kl=report.kl,
                reward=report.reward_after,
                reference_reward=report.reward_before,
                final_loss=run.metrics[-1]["loss"],
                logp_chosen_start=run.metrics[0]["logps/chosen"],
                logp_chosen_end=run.metrics[-1]["logps/chosen"],
                train_s=run.train_s,
                wall_s=time.perf_counter() - started,
            )
            points.append(point)
            job.note(point)
        return points

    return work


def sweep_csv(points: Sequence[SweepPoint]) -> str:
    """The sweep as CSV text, one row per β (for the page's download button)."""
    out = io.StringIO()
    names = [f.name for f in fields(SweepPoint)]
    writer = csv.DictWriter(out, fieldnames=names)
    writer.writeheader()
    for point in points:
        writer.writerow(point.row())
    return out.getvalue()


# -- a single annotator ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabellerResult:
    """How a policy ranks held-out pairs after DPO on one labeller's picks (implicit rewards, ties count ½)."""

    name: str
    agrees_right: float  # share of pairs where the policy prefers the right answer
    agrees_longer: float  # share of pairs (of unequal length) where it prefers the longer answer
    reward: float | None  # share of sampled answers that are right (true reward)
    steps: int
    train_s: float
    examples: list[str]  # a few greedy answers


def longer_preference(scores: Sequence[PairScore], pairs: Sequence[Pair]) -> float:
    """Share of pairs whose implicit reward favours the longer answer (pairs of equal length are skipped)."""
    wins, n = 0.0, 0
    for score, pair in zip(scores, pairs, strict=True):
        chosen, rejected = len(answer_text(pair["chosen"])), len(answer_text(pair["rejected"]))
        if chosen == rejected:
            continue
        margin = score.margin if chosen > rejected else -score.margin  # > 0: the longer one is favoured
        wins += 1.0 if margin > 0 else 0.5 if margin == 0 else 0.0
        n += 1
    return wins / max(1, n)


def annotator_work(
    start: LoadedModel,
    labellers: Mapping[str, Sequence[Pair]],
    eval_pairs: Sequence[Pair],
    settings: DPOSettings,
    reward_fn: RewardFn | None = None,
) -> Callable[[Job], list[LabellerResult]]:
    """One DPO run per labeller (same answer pairs and settings; only who picked "chosen" differs), then how
    each policy ranks held-out pairs whose `chosen` is the right answer. The first result is the start model."""
    prompts = unique_prompts(eval_pairs)

    def measure(name: str, model: PreTrainedModel, steps: int, train_s: float) -> LabellerResult:
        scores = score_pairs(model, start.model, start.tokenizer, eval_pairs)
        reward = drift_from_reference(model, start.model, start.tokenizer, prompts, reward_fn).reward
        examples = greedy_answers(model, start.tokenizer, prompts[:4])
        return LabellerResult(
            name, heldout_accuracy(scores), longer_preference(scores, eval_pairs), reward, steps, train_s, examples
        )

    def work(job: Job) -> list[LabellerResult]:
        results = [measure(f"{start.name} (start)", start.model, 0, 0.0)]
        for index, (name, pairs) in enumerate(labellers.items()):
            if job.should_stop:
                break
            run = train_dpo(start, pairs, settings, TaggedJob(job, labeller=index))
            if job.should_stop and run.steps_done < settings.steps:
                break
            result = measure(name, run.policy, run.steps_done, run.train_s)
            results.append(result)
            job.note(result)
        return results

    return work


# -- DPO vs RLHF on one frontier ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontierPoint:
    """One trained policy on the reward-vs-KL plane, with what it cost to get there."""

    method: str  # "DPO" or "RLHF (reward model + RLOO)"
    beta: float  # DPO's β, or RLHF's KL coefficient: the same β of max E[r] − β·KL in both derivations
    kl: float  # KL(π‖π_ref) on answers sampled for held-out pairs' prompts, nats per answer
    reward: float | None  # share of those answers that are right (true reward)
    reference_reward: float | None
    train_s: float  # wall time of the policy's own training
    extra_s: float  # wall time of what it needed first (RLHF: the reward model), 0 for DPO
    models_in_memory: int  # models held while training


def rlhf_models_in_memory(beta: float, reward_model: bool) -> int:
    """Models RLOO holds while training: the policy, a frozen reference when β > 0 (for the KL penalty), and
    the reward model when the reward is learned (RLOO needs no value model, unlike PPO)."""
    return 1 + (beta > 0) + reward_model


def rlhf_point(
    run: Any, start: LoadedModel, heldout_pairs: Sequence[Pair], reward_fn: RewardFn | None, extra_s: float = 0.0
) -> FrontierPoint:
    """An `llmlab.rlhf.RLRun` (the RLHF page's online runs) scored exactly like the DPO policies."""
    report = compare_on("held-out pairs", run.policy, start.model, start.tokenizer, heldout_pairs, reward_fn)
    learned = run.config.reward == "reward model"
    return FrontierPoint(
        method="RLHF (reward model + RLOO)" if learned else "RL on the true reward (RLOO)",
        beta=run.config.beta,
        kl=report.kl,
        reward=report.reward_after,
        reference_reward=report.reward_before,
        train_s=run.seconds,
        extra_s=extra_s,
        models_in_memory=rlhf_models_in_memory(run.config.beta, learned),
    )


def rlhf_frontier_work(
    start: LoadedModel,
    heldout_pairs: Sequence[Pair],
    betas: Sequence[float],
    rl_steps: int = 30,
    reward_fn: RewardFn | None = None,
) -> Callable[[Job], list[FrontierPoint]]:
    """The RLHF page's pipeline at several β, scored exactly like the DPO runs: train a reward model on the same
    preference pairs (trl RewardTrainer), then online RL from the same start model (trl RLOOTrainer, KL
    coefficient β), then KL and true reward on the same held-out prompts with the same estimator."""
    from llmlab.reward import RewardRunConfig, train_reward_model
    from llmlab.rlhf import RLRunConfig, run_rl

    configs = [RLRunConfig(beta=beta, max_steps=rl_steps) for beta in betas]
    for config in configs:
        config.check()  # fail before any training

    def work(job: Job) -> list[FrontierPoint]:
        started = time.perf_counter()
        reward_run = train_reward_model(start, RewardRunConfig())
        reward_s = time.perf_counter() - started
        points: list[FrontierPoint] = []
        for config in configs:
            if job.should_stop:
                break
            run = run_rl(start, reward_run, config, job)
            if job.should_stop and len(run.history) < config.max_steps:
                break
            point = rlhf_point(run, start, heldout_pairs, reward_fn, extra_s=reward_s)
            points.append(point)
            job.note(point)
        return points

    return work
