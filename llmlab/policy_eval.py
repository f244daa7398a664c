"""How a trained policy is scored against its reference (the DPO page's policies, the RLHF page's online runs,
and the policies trained on the room's votes all go through it, so they are comparable):

- held-out pairs: the share whose implicit reward β·log π/π_ref ranks the chosen answer first (`heldout_accuracy`);
- sampled answers: one answer per held-out question sampled from the policy (our own batched sampler with a
  private seed), their true reward (sampled correctness) and the exact per-token KL(π ‖ π_ref) summed along them
  (`drift_from_reference`), the drift β is meant to limit;
- `compare_on`: all of it for one set of pairs, start model against trained policy.

    report = compare_on("held-out", run.policy, run.reference, start.tokenizer, heldout_pairs, true_reward)
    report.accuracy_after, report.kl, report.reward_after     # e.g. 0.6, 0.3 nats, 0.85
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.dpo import Pair, PairScore, generation_prompt_ids, prompt_text, score_pairs
from llmlab.nexttoken import sample_answers

RewardFn = Callable[[str, str], float]  # (prompt text, answer text) -> the preference data's true reward


# -- held-out pairs, ranked by the implicit reward ---------------------------------------------------------


def heldout_accuracy(scores: Sequence[PairScore]) -> float:
    """Preference accuracy: the share of pairs whose implicit reward ranks the chosen answer above the rejected
    one (margin > 0; a tie counts one half), i.e. trl's `rewards/accuracies` on pairs it never trained on.

    The reference ties every pair with itself, so the start model scores exactly 50%: chance. Raw log-probs
    would not do here: they mostly reflect length and phrasing (a padded answer costs hundreds of nats),
    not which answer is right."""
    wins = sum(1.0 if s.margin > 0 else 0.5 if s.margin == 0 else 0.0 for s in scores)
    return wins / max(1, len(scores))


# -- sampling, KL to the reference, true reward ------------------------------------------------------------


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
    device = policy.device
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
    length: float = 0.0  # mean answer length, tokens (the end-of-text token not counted)


SAMPLES_PER_PROMPT = 4  # answers sampled per question: correctness from 1 sample each varied ±4 points


def drift_from_reference(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    reward_fn: RewardFn | None = None,
    seed: int = 0,
    max_new_tokens: int = 24,
    samples: int = SAMPLES_PER_PROMPT,
) -> DriftReport:
    """Sample `samples` answers per pair's prompt from the policy (seeds seed, seed+1, ...); KL to the reference
    and the true reward, averaged over all of them."""
    prompts = [generation_prompt_ids(tokenizer, pair) for pair in pairs] * samples
    answers = [
        answer
        for round_ in range(samples)
        for answer in sample_answers(
            policy, tokenizer, prompts[: len(pairs)], max_new_tokens=max_new_tokens, seed=seed + round_
        )
    ]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if reference is policy:  # the start model against itself: KL is 0, skip two forward passes
        kl = torch.zeros(len(answers))
    else:
        kl = per_token_kl(policy, reference, prompts, answers, pad)
    texts = [tokenizer.decode(a, skip_special_tokens=True) for a in answers]
    questions = [prompt_text(pair) for pair in pairs] * samples
    reward = None
    if reward_fn is not None:
        reward = sum(reward_fn(q, t) for q, t in zip(questions, texts, strict=True)) / len(texts)
    eos = tokenizer.eos_token_id
    length = sum(len(a) - (1 if a and a[-1] == eos else 0) for a in answers) / max(1, len(answers))
    samples = list(zip(questions, texts, strict=True))[:8]
    return DriftReport(kl=float(kl.mean()), reward=reward, samples=samples, length=length)


def greedy_texts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair]) -> list[str]:
    """The model's greedy answer to each pair's prompt, as text (the before/after tables)."""
    prompts = [generation_prompt_ids(tokenizer, pair) for pair in pairs]
    answers = sample_answers(model, tokenizer, prompts, greedy=True)
    return [tokenizer.decode(a, skip_special_tokens=True) for a in answers]


# -- one set of pairs: the start model against the trained policy ------------------------------------------


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
    length: tuple[float, float] = (0.0, 0.0)  # mean length of the sampled answers, tokens (reference, policy)


def compare_on(
    name: str,
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    reward_fn: RewardFn | None = None,
    seed: int = 0,
    asked: Sequence[Pair] | None = None,
) -> SplitReport:
    """Held-out preference accuracy of `policy` against its `reference` on these pairs; KL and true reward on
    answers sampled for the `asked` prompts (default: one per distinct prompt of the pairs; the pages ask every
    question of the split: `llmlab.preferences.asked`)."""
    prompts = list(asked) if asked is not None else unique_prompts(pairs)
    scores = score_pairs(policy, reference, tokenizer, pairs)
    drift = drift_from_reference(policy, reference, tokenizer, prompts, reward_fn, seed)
    before = drift_from_reference(reference, reference, tokenizer, prompts, reward_fn, seed)
    n = len(scores)
    return SplitReport(
        name=name,
        accuracy_before=0.5,  # heldout_accuracy of the reference against itself: every margin is 0
        accuracy_after=heldout_accuracy(scores),
        kl=drift.kl,
        reward_before=before.reward,
        reward_after=drift.reward,
        logp_chosen=(sum(s.reference_chosen for s in scores) / n, sum(s.policy_chosen for s in scores) / n),
        logp_rejected=(sum(s.reference_rejected for s in scores) / n, sum(s.policy_rejected for s in scores) / n),
        length=(before.length, drift.length),
    )
