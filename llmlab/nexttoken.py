"""Next-token prediction, the card's code example made reusable.

The model runs once per prompt (`next_token_logits`); temperature, top-k and top-p are applied to those
cached logits afterwards (`sampling_distribution`), so moving a slider never re-runs the model.

    logits = next_token_logits(model, tokenizer, "The capital of France is")   # (V,)
    probs = sampling_distribution(logits, temperature=0.7, top_k=50, top_p=0.9)  # (V,), sums to 1
    top_tokens(probs, tokenizer, k=10)[0].text                                 # " Paris"
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.corpus import COUNTRIES, capital_prompt


class PromptError(ValueError):
    """A prompt the model cannot take (empty, or nothing left after tokenizing)."""


@dataclass(frozen=True)
class TokenProb:
    token_id: int
    text: str  # decoded, e.g. " Paris"
    prob: float


@dataclass(frozen=True)
class PromptTokens:
    ids: tuple[int, ...]
    pieces: tuple[str, ...]  # each token decoded on its own, readable (no byte-level "Ġ" marks)
    truncated: int  # how many tokens were dropped from the front to fit the context


def context_limit(model: PreTrainedModel) -> int:
    config = model.config
    return int(getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 2048))


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, max_tokens: int) -> PromptTokens:
    """Tokenize a prompt, keeping its last `max_tokens` tokens (the model's context window)."""
    if not prompt or not prompt.strip():
        raise PromptError("The prompt is empty: type a few words for the model to continue.")
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if not ids:
        raise PromptError("The prompt has no tokens the model can read.")
    dropped = max(0, len(ids) - max_tokens)
    ids = ids[dropped:]
    pieces = tuple(readable_piece(tokenizer, i) for i in ids)
    return PromptTokens(ids=tuple(ids), pieces=pieces, truncated=dropped)


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte-to-printable-character table, inverted: which byte each token character stands for."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTE_DECODER = _byte_level_decoder()


# token id -> readable_piece, per tokenizer: the explorer shows up to 60 tokens on every slider move, and
# each decode costs ~0.1 ms. Entries only ever hold the same string, so concurrent sessions may share it.
_PIECES: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, dict[int, str]] = weakref.WeakKeyDictionary()


def readable_piece(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """One token as readable text. A token holding part of a multi-byte character (half an emoji)
    decodes to "\ufffd"; show its bytes instead, e.g. "\\xf0\\x9f"."""
    pieces = _PIECES.get(tokenizer)
    if pieces is None:
        pieces = _PIECES.setdefault(tokenizer, {})
    piece = pieces.get(token_id)
    if piece is None:
        piece = pieces[token_id] = _decode_piece(tokenizer, token_id)
    return piece


def _decode_piece(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    token = tokenizer.convert_ids_to_tokens(token_id)
    if token and all(c in _BYTE_DECODER for c in token):
        return "".join(f"\\x{_BYTE_DECODER[c]:02x}" for c in token)
    return token or text


@torch.inference_mode()
def next_token_logits(model: PreTrainedModel, token_ids: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Raw logits (V,) for the token after `token_ids`: one forward pass, float32 on the CPU."""
    device = next(model.parameters()).device
    input_ids = torch.tensor([list(token_ids)], device=device)
    logits = model(input_ids=input_ids).logits  # (1, T, V)
    return logits[0, -1].float().cpu()


def filtered_sampling(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution a sampler draws from, and which tokens the filters kept: logits/T, then keep the top-k
    (ties with the k-th are kept), then the top-p nucleus (ties: the lower token id first).

    temperature > 0; top_k <= 0 or None keeps all; top_p in [0, 1], where 0 keeps only the top token.
    Returns (probabilities (V,) in float64 that sum to 1 with zeros for removed tokens, kept (V,) bool). A kept
    token's probability can still round to 0 at a very low temperature: `kept`, not `probs > 0`, says what the
    filters left. Float64, like the browser's copy of this function (ui/instant/math.js), so the two agree.
    """
    if not temperature > 0:
        raise ValueError("temperature must be > 0")
    scaled = logits.double() / temperature
    vocab = scaled.shape[-1]
    if top_k is not None and 0 < top_k < vocab:
        kth = torch.topk(scaled, top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    kept = scaled > float("-inf")
    probs = torch.softmax(scaled, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True, stable=True)  # ties: the lower id first
        # Keep a token if the mass before it is < top_p; the first token is always kept.
        mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
        keep_sorted = mass_before < top_p
        keep_sorted[0] = True
        kept = kept & torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
        probs = probs * kept
        probs = probs / probs.sum()
    return probs, kept


def sampling_distribution(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """The distribution a sampler draws from: logits/T, then keep the top-k, then the top-p nucleus; float64
    probabilities (V,) that sum to 1 with zeros for removed tokens (see `filtered_sampling`)."""
    return filtered_sampling(logits, temperature, top_k, top_p)[0]


def top_tokens(
    probs: torch.Tensor, tokenizer: PreTrainedTokenizerBase, k: int = 10, also: int | None = None
) -> list[TokenProb]:
    """The k most likely tokens, most likely first; with `also`, that token last if it is not among them (a rare
    draw that was just sampled, say)."""
    values, ids = torch.topk(probs, min(k, probs.shape[-1]))
    tops = [
        TokenProb(token_id=i, text=readable_piece(tokenizer, i), prob=v)
        for v, i in zip(values.tolist(), ids.tolist(), strict=True)
    ]
    if also is not None and all(t.token_id != also for t in tops):
        tops.append(TokenProb(also, readable_piece(tokenizer, also), float(probs[also])))
    return tops


def sampling_summary(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> str:
    """What temperature, top-k and top-p leave of the vocabulary, in words (the explorer's caption): how many
    tokens the filters keep, and how few of them carry 99% of the probability (temperature changes that, never
    the first)."""
    probs, kept = filtered_sampling(logits, temperature, top_k, top_p)
    vocab = probs.shape[-1]
    ranked = torch.sort(probs, descending=True, stable=True).values
    carry = int(((torch.cumsum(ranked, dim=-1) - ranked) < 0.99).sum())  # the most likely, up to 99% of the mass
    notes = [
        f"{int(kept.sum()):,} of {vocab:,} tokens can be sampled",
        f"the {carry:,} most likely carry 99% of the probability" if carry > 1 else "the top token alone carries 99%",
    ]
    if top_k >= vocab:
        notes.append(f"top-k {int(top_k):,} ≥ the vocabulary ({vocab:,}), so top-k removes nothing")
    if top_p == 0:
        notes.append("top-p 0 keeps only the most likely token: sampling becomes greedy")
    return "; ".join(notes) + "."


@torch.inference_mode()
def greedy_continuation(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_new_tokens: int = 30,
    stop_text: str | None = None,
) -> str:
    """Greedy continuation of `prompt` (text only, prompt excluded); stops at EOS or at `stop_text`."""
    tokens = encode_prompt(tokenizer, prompt, context_limit(model) - max_new_tokens)
    ids = list(tokens.ids)
    out: list[int] = []
    for _ in range(max_new_tokens):
        next_id = int(next_token_logits(model, ids[-context_limit(model) :]).argmax())
        if next_id == tokenizer.eos_token_id:
            break
        ids.append(next_id)
        out.append(next_id)
        if stop_text and stop_text in tokenizer.decode(out):
            break
    text = tokenizer.decode(out)
    if stop_text and stop_text in text:
        text = text[: text.index(stop_text)]
    return text


def capital_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(right, total): greedy answers to "The capital of X is" that name X's capital, over 40 countries."""
    right = 0
    for country in COUNTRIES:
        answer = greedy_continuation(model, tokenizer, capital_prompt(country), 8, stop_text=".")
        right += answer.strip().split(",")[0] == country.capital
    return right, len(COUNTRIES)


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
    device = next(model.parameters()).device
    seqs = [list(p) + list(a) for p, a in zip(prompts, answers, strict=True)]
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


@torch.no_grad()
def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[list[int]],
    max_new_tokens: int = 24,
    seed: int = 0,
    greedy: bool = False,
    temperature: float = 1.0,
) -> list[list[int]]:
    """Answer tokens (up to and including EOS) for each prompt, sampled from softmax(logits / temperature), or
    greedy (`greedy`, or a temperature of 0).

    Our own batched loop with a private torch.Generator: `generate()` would draw from torch's global RNG,
    which other sessions' training threads share."""
    device = model.device
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
            if greedy or temperature <= 0:
                next_ids = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)  # / 1.0 is exact: temperature 1 is unchanged
                next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
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
