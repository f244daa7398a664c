"""Pre-training from scratch: a tiny GPT-2 learns next-token prediction on the generated corpus.

One plain torch loop serves both `scripts/train_tiny.py` (which builds `models/tiny-base`) and the live
"watch it learn" demo (which runs it in a background job with a stop event and a metrics callback).
It follows the card's pseudocode: sample text, predict every next token, cross-entropy, step.

    model = new_model(tokenizer, TinyGPTConfig(), seed=0)
    ids = encode_corpus(tokenizer, generate_corpus(seed=0))
    history = pretrain(model, ids, PretrainConfig(steps=300))
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from llmlab.jobs import DivergedError


@dataclass(frozen=True)
class TinyGPTConfig:
    """Shape of the bundled tiny GPT-2 (~1M parameters)."""

    n_embd: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_positions: int = 128


@dataclass(frozen=True)
class PretrainConfig:
    """One pre-training run. Defaults make " Paris" top-1 within ~30 s on 2 CPU cores."""

    steps: int = 600
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    block_size: int = field(default=32, metadata={"help": "Tokens per sequence (the context the model sees)."})
    learning_rate: float = field(default=4e-3, metadata={"help": "AdamW step size; above ~3e-2 it diverges."})
    warmup_steps: int = 20
    weight_decay: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class StepMetrics:
    step: int
    loss: float  # mean cross-entropy over the batch, nats per token
    tokens_seen: int
    elapsed_s: float


def new_model(tokenizer: PreTrainedTokenizerBase, config: TinyGPTConfig, seed: int = 0) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 of the given shape, with the tokenizer's special-token ids."""
    torch.manual_seed(seed)
    gpt_config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        # GPT2Config defaults these to 50256, which is outside our vocabulary.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # No dropout: a 1M model on a small corpus does not overfit in a demo's few hundred steps.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(gpt_config)


def encode_corpus(tokenizer: PreTrainedTokenizerBase, text: str) -> torch.Tensor:
    """The whole corpus as one 1-D LongTensor of token ids."""
    # The backend tokenizer skips the "longer than model_max_length" check, meant for single inputs.
    return torch.tensor(tokenizer.backend_tokenizer.encode(text).ids, dtype=torch.long)


def sample_batch(ids: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator):
    """Random windows of the token stream: inputs (B, T) and their next tokens (B, T)."""
    starts = torch.randint(0, len(ids) - block_size - 1, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    windows = ids[starts[:, None] + offsets]  # (B, T+1)
    return windows[:, :-1], windows[:, 1:]


def learning_rate_at(step: int, config: PretrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% over the run."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def pretrain(
    model: GPT2LMHeadModel,
    ids: torch.Tensor,
    config: PretrainConfig,
    on_step: Callable[[StepMetrics, GPT2LMHeadModel], None] | None = None,
    stop: threading.Event | None = None,
) -> list[StepMetrics]:
    """Train `model` in place on random windows of `ids`; returns the per-step metrics.

    `on_step` is called after every step (for live charts and probes); setting `stop` ends the run after
    the current step. Raises DivergedError if the loss stops being finite.
    """
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, betas=(0.9, 0.95)
    )
    model.train()
    history: list[StepMetrics] = []
    start = time.perf_counter()
    for step in range(config.steps):
        if stop is not None and stop.is_set():
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config)
        inputs, targets = sample_batch(ids, config.batch_size, config.block_size, generator)
        logits = model(input_ids=inputs).logits  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        if not torch.isfinite(loss):
            model.eval()
            raise DivergedError(
                f"The loss became {loss.item()} at step {step}: the learning rate "
                f"{config.learning_rate:g} is too high. Lower it and start again."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        metrics = StepMetrics(
            step=step + 1,
            loss=loss.item(),
            tokens_seen=(step + 1) * config.batch_size * config.block_size,
            elapsed_s=time.perf_counter() - start,
        )
        history.append(metrics)
        if on_step is not None:
            on_step(metrics, model)
    model.eval()
    return history
