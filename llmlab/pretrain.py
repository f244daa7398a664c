"""Pre-training from scratch: a tiny GPT-2 learns next-token prediction on the generated corpus.

One plain torch loop serves both `scripts/train_tiny.py` (which builds `models/tiny-base`) and the live
"watch it learn" demo (which runs it in a background job with a stop event and a metrics callback).
It follows the card's pseudocode: sample text, predict every next token, cross-entropy, step.

    model = new_model(tokenizer, TinyGPTConfig(), seed=0)
    ids = encode_corpus(tokenizer, generate_corpus(seed=0))
    history = pretrain(model, ids, PretrainConfig(steps=300))

The live demo wraps the same loop in `live_pretraining(job, ...)`: per-step metrics via `job.log`, and
every few steps a probe of the next-token distribution (and now and then a greedy sample) via `job.note`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
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
    """One pre-training run. The defaults are the live demo's: " Paris" stays the top-1 of "The capital of
    France is" from step ~180 (~185k tokens: ~20-25 s at the 7-10k tokens/s of 2 quiet cores; see
    bench/bench_pretraining.py); the schedule runs on to 600 steps for those who keep watching."""

    steps: int = field(
        default=600, metadata={"help": "Optimizer steps; the learning rate decays over them (cosine to 10%)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Sequences per step."})
    block_size: int = field(default=32, metadata={"help": "Tokens per sequence (the context the model sees)."})
    learning_rate: float = field(default=4e-3, metadata={"help": "AdamW step size; above ~3e-2 it diverges."})
    # Measured (seed 0, batch 32 x 32, 600-step schedule): " Paris" stays the top-1 from step 185 with lr 4e-3
    # and 20 warm-up steps, 180 with 10; 200 at lr 3e-3, 160 at 5e-3, 280 at 8e-3 (one seed each, so within
    # noise of each other except 8e-3): the lr 4e-3 stays, with the shorter warm-up.
    warmup_steps: int = field(default=10, metadata={"help": "Steps of linear learning-rate warm-up."})
    weight_decay: float = 0.01
    seed: int = field(default=0, metadata={"help": "Seeds the random initial weights and the batch order."})


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
        # GPT-2's tanh-approximated GELU as one fused kernel: the same function as GPT-2's "gelu_new", which
        # is written as eight separate tensor ops and made a training step ~10% slower here.
        activation_function="gelu_pytorch_tanh",
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
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        betas=(0.9, 0.95),
        fused=device.type in ("cpu", "cuda") or None,  # one kernel for all parameters (what trl's trainers use)
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
        inputs, targets = inputs.to(device), targets.to(device)  # no-op on the CPU
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


# -- the live "watch it learn" run ------------------------------------------------------------------

PROBE_PROMPT = "The capital of France is"
SAMPLE_PROMPTS = ("Once upon a time", "The capital of Japan is", "Q: What is 3 + 4? A:")


@dataclass(frozen=True)
class ProbeConfig:
    """What the live run looks at while it trains (cheap: one forward of a few tokens per probe)."""

    prompt: str = field(default=PROBE_PROMPT, metadata={"help": "Its next-token distribution is redrawn as it trains."})
    every: int = field(default=10, metadata={"help": "Steps between two probes of the next-token distribution."})
    sample_every: int = field(default=50, metadata={"help": "Steps between two rounds of greedy samples."})
    sample_prompts: tuple[str, ...] = SAMPLE_PROMPTS
    sample_tokens: int = 16


_corpus_cache: dict[tuple[str, int, int], torch.Tensor] = {}
_corpus_lock = threading.Lock()


def corpus_ids(tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> torch.Tensor:
    """The generated corpus (seed `seed`) encoded with `tokenizer`, the same ids as `encode_corpus`:
    computed once per process (~2 s), shared, read-only (runs only index into it).

    It encodes document by document with `encode_batch`, which releases the GIL: encoding the whole text
    at once holds it for seconds, freezing every other thread of the server (every page's script run)."""
    from llmlab.corpus import EOS, generate_documents

    key = (tokenizer.name_or_path, len(tokenizer), seed)
    with _corpus_lock:
        if key not in _corpus_cache:
            docs = [doc + EOS + "\n" for doc in generate_documents(seed)]
            encoded = tokenizer.backend_tokenizer.encode_batch(docs)
            _corpus_cache[key] = torch.tensor([i for e in encoded for i in e.ids], dtype=torch.long)
        return _corpus_cache[key]


def expected_answer(prompt: str) -> str | None:
    """The corpus's answer to a capital probe: "The capital of France is" -> " Paris"; None for other prompts."""
    from llmlab.corpus import COUNTRIES, capital_prompt

    for country in COUNTRIES:
        if prompt.strip() == capital_prompt(country):
            return " " + country.capital
    return None


@dataclass(frozen=True)
class ProbeStart:
    """What a live run probes: its prompt, the corpus's answer to it (None: not a capital probe), the vocabulary."""

    prompt: str
    answer: str | None
    vocab_size: int


@dataclass(frozen=True)
class Probe:
    """The probe prompt's next-token distribution at one step."""

    step: int
    probs: np.ndarray  # (V,) float32, sums to 1


@dataclass(frozen=True)
class Samples:
    """Greedy continuations of the sample prompts at one step."""

    step: int
    texts: list[str]  # prompt + continuation, one per sample prompt


def leader_lines(probes: list[Probe], also: int | None = None, last: int = 6) -> dict[int, list[float]]:
    """token id -> its probability at each probe, for every token that was ever the probe's top-1 (the `last`
    most recent of them) and `also` (the right answer, even before it leads)."""
    leaders = list(dict.fromkeys(int(np.argmax(p.probs)) for p in probes))[-last:]
    if also is not None and also not in leaders:
        leaders.append(also)
    return {t: [float(p.probs[t]) for p in probes] for t in leaders}


def top1_since(probes: list[Probe], token_id: int) -> Probe | None:
    """The first probe from which `token_id` stayed the most likely next token to the last probe (None: it is
    not the top-1 now)."""
    since = len(probes)
    while since and int(np.argmax(probes[since - 1].probs)) == token_id:
        since -= 1
    return probes[since] if since < len(probes) else None


def diverged_loss(vocab_size: int) -> float:
    """A live loss above this (1.5 ln V: worse than a uniform guess) means the step size is too big."""
    return 1.5 * math.log(vocab_size)


def live_pretraining(
    job,
    tokenizer: PreTrainedTokenizerBase,
    config: PretrainConfig,
    probe: ProbeConfig = ProbeConfig(),
    shape: TinyGPTConfig = TinyGPTConfig(),
) -> GPT2LMHeadModel:
    """The worker of the live demo (`Job(name, lambda job: live_pretraining(job, ...))`): pre-train a fresh
    tiny GPT-2 from random init, logging every step and probing every `probe.every` steps.

    job.metrics: {"step", "loss", "tokens", "elapsed_s"} per step.
    job.notes:   a ProbeStart first, then a Probe every `probe.every` steps and Samples every
                 `probe.sample_every` steps (and both at the last step).
    Returns the trained model (in eval mode)."""
    from llmlab.nexttoken import encode_prompt, greedy_continuation, next_token_logits

    prompt_ids = encode_prompt(tokenizer, probe.prompt, config.block_size).ids  # the context it trains on
    ids = corpus_ids(tokenizer)
    model = new_model(tokenizer, shape, seed=config.seed)

    def record_probe(step: int) -> None:
        probs = torch.softmax(next_token_logits(model, prompt_ids), dim=-1)  # (V,)
        job.note(Probe(step, probs.numpy().astype("float32")))

    def record_samples(step: int) -> None:
        texts = [p + greedy_continuation(model, tokenizer, p, probe.sample_tokens) for p in probe.sample_prompts]
        job.note(Samples(step, texts))

    def on_step(m: StepMetrics, _model: GPT2LMHeadModel) -> None:
        job.log(step=m.step, loss=m.loss, tokens=m.tokens_seen, elapsed_s=m.elapsed_s)
        if m.step % probe.every == 0:
            model.eval()  # no dropout in this model, so eval/train only matter for other shapes
            record_probe(m.step)
            if m.step % probe.sample_every == 0:
                record_samples(m.step)
            model.train()

    job.note(ProbeStart(probe.prompt, expected_answer(probe.prompt), len(tokenizer)))
    model.eval()
    record_probe(0)
    record_samples(0)
    history = pretrain(model, ids, config, on_step=on_step, stop=job.stop_event)  # leaves it in eval mode
    last = history[-1].step if history else 0
    if last % probe.every:
        record_probe(last)
    if last % probe.every or last % probe.sample_every:
        record_samples(last)
    model.eval()
    return model
