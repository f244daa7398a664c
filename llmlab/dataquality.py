"""Data quality vs quantity (pre-training Q4): corrupt a fraction of the corpus, pre-train, compare.

Three kinds of corruption, each applied to a fraction `noise` of the documents (the rest stay clean):
- "random_capital": every capital named in the document is swapped for a random other capital, so the
  errors disagree with each other (they should be "outvoted");
- "repeated_lie": every capital is swapped for one fixed wrong capital per country, so the same error
  repeats (frequency wins: past 50% the lie becomes the answer);
- "shuffled_words": the document's words are shuffled (grammar destroyed, word counts kept).

Each run pre-trains the same fresh model (same seed, same batches) on one noisy corpus and reports the loss
on *clean* held-out text and how much probability the model gives the right capital for 40 countries.

    results = noise_experiment(tokenizer, [0.0, 0.05, 0.3], NoiseConfig(kind="random_capital", steps=300))
    [(r.noise, r.clean_loss, r.p_correct) for r in results]

`python -m llmlab.dataquality` precomputes the page's default view into models/tiny-base/data_quality.json.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from llmlab.corpus import COUNTRIES, EOS, capital_prompt, generate_documents
from llmlab.nexttoken import next_token_logits
from llmlab.pretrain import PretrainConfig, StepMetrics, TinyGPTConfig, new_model, pretrain

KINDS = {
    "random_capital": "wrong capitals, a different random one each time",
    "repeated_lie": "wrong capitals, the same wrong one every time",
    "shuffled_words": "words shuffled",
}
N_DOCUMENTS = 6_000  # ~220k tokens: more than a short run reads, so no document is seen many times
HELD_OUT_SEED = 12_345  # clean evaluation text comes from a different corpus seed than training
PRECOMPUTED = Path(__file__).resolve().parents[1] / "models" / "tiny-base" / "data_quality.json"

_CAPITAL = re.compile(
    r"\b(" + "|".join(sorted((re.escape(c.capital) for c in COUNTRIES), key=len, reverse=True)) + r")\b"
)
_CAPITALS = [c.capital for c in COUNTRIES]
# One fixed wrong capital per country: the next country's capital in the list (a derangement).
_LIE = {c.capital: _CAPITALS[(i + 1) % len(_CAPITALS)] for i, c in enumerate(COUNTRIES)}


@dataclass(frozen=True)
class NoiseConfig:
    """One data-quality comparison: the corruption kind and the short pre-training run for each level."""

    kind: str = field(default="random_capital", metadata={"help": "What a corrupted document looks like."})
    steps: int = field(default=300, metadata={"help": "Training steps per noise level (batch 32 × 32 tokens)."})
    learning_rate: float = 4e-3
    warmup_steps: int = 20
    batch_size: int = 32
    block_size: int = 32
    seed: int = 0
    model: TinyGPTConfig = TinyGPTConfig()
    n_documents: int = N_DOCUMENTS  # size of the generated training corpus before corruption

    def pretrain_config(self) -> PretrainConfig:
        return PretrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            block_size=self.block_size,
            learning_rate=self.learning_rate,
            warmup_steps=self.warmup_steps,
            seed=self.seed,
        )


@dataclass(frozen=True)
class NoiseResult:
    noise: float  # fraction of documents corrupted
    kind: str
    steps: int
    train_loss: float  # mean of the last 20 steps, on the noisy training text (nats/token)
    clean_loss: float  # on clean held-out text (nats/token)
    p_correct: float  # mean over 40 countries of p(first token of the right capital | "The capital of X is")
    capitals_right: int  # countries whose top-1 next token starts the right capital
    losses: tuple[float, ...]  # per-step training loss
    seconds: float


def corrupt_document(doc: str, kind: str, rng: random.Random) -> str:
    """One document made wrong in the given way (documents without capitals only change when shuffled)."""
    if kind == "random_capital":
        return _CAPITAL.sub(lambda m: rng.choice([c for c in _CAPITALS if c != m.group(1)]), doc)
    if kind == "repeated_lie":
        return _CAPITAL.sub(lambda m: _LIE[m.group(1)], doc)
    if kind == "shuffled_words":
        words = doc.split()
        rng.shuffle(words)
        return " ".join(words)
    raise ValueError(f"unknown corruption kind {kind!r}; choose one of {', '.join(KINDS)}")


def corrupt_documents(docs: Sequence[str], noise: float, kind: str, seed: int = 0) -> tuple[list[str], list[int]]:
    """(documents, indices of the corrupted ones): a fraction `noise` of them, chosen at random, corrupted."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a fraction between 0 and 1, got {noise}")
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(docs)), round(noise * len(docs))))
    out = list(docs)
    for i in chosen:
        out[i] = corrupt_document(docs[i], kind, rng)
    return out, chosen


@cache
def _clean_documents(n_documents: int, seed: int) -> tuple[str, ...]:
    return tuple(generate_documents(seed, n_documents))


def _encode_documents(tokenizer: PreTrainedTokenizerBase, docs: Sequence[str]) -> list[list[int]]:
    return [e.ids for e in tokenizer.backend_tokenizer.encode_batch([d + EOS + "\n" for d in docs])]


_encoded_clean: dict[tuple[str, int, int, int], list[list[int]]] = {}
_encoded_lock = threading.Lock()


def noisy_corpus_ids(
    tokenizer: PreTrainedTokenizerBase, noise: float, kind: str, seed: int = 0, n_documents: int = N_DOCUMENTS
) -> torch.Tensor:
    """The training corpus with a fraction `noise` of documents corrupted, as one 1-D LongTensor.

    The clean documents are encoded once per process; only the corrupted ones are re-encoded."""
    key = (tokenizer.name_or_path, len(tokenizer), n_documents, seed)
    docs = _clean_documents(n_documents, seed)
    with _encoded_lock:
        if key not in _encoded_clean:
            _encoded_clean[key] = _encode_documents(tokenizer, docs)
        clean = _encoded_clean[key]
    noisy, chosen = corrupt_documents(docs, noise, kind, seed)
    encoded = list(clean)
    for i, ids in zip(chosen, _encode_documents(tokenizer, [noisy[i] for i in chosen]), strict=True):
        encoded[i] = ids
    return torch.tensor([t for ids in encoded for t in ids], dtype=torch.long)


@torch.inference_mode()
def clean_loss(model, tokenizer: PreTrainedTokenizerBase, block_size: int, n_windows: int = 64) -> float:
    """Mean next-token cross-entropy (nats/token) on fixed windows of clean text the run never trained on."""
    ids = _held_out_ids(tokenizer)
    starts = torch.linspace(0, len(ids) - block_size - 2, n_windows).long()
    windows = ids[starts[:, None] + torch.arange(block_size + 1)]  # (W, T+1)
    logits = model(input_ids=windows[:, :-1]).logits  # (W, T, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()


def _held_out_ids(tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    key = (tokenizer.name_or_path, len(tokenizer), 400, HELD_OUT_SEED)
    with _encoded_lock:
        if key not in _encoded_clean:
            _encoded_clean[key] = _encode_documents(tokenizer, generate_documents(HELD_OUT_SEED, 400))
        return torch.tensor([t for ids in _encoded_clean[key] for t in ids], dtype=torch.long)


def capital_knowledge(model, tokenizer: PreTrainedTokenizerBase) -> tuple[float, int]:
    """(mean p of the right capital's first token, countries where it is the top-1) over the 40 countries."""
    total_p, right = 0.0, 0
    for country in COUNTRIES:
        prompt = tokenizer(capital_prompt(country), add_special_tokens=False)["input_ids"]
        answer = tokenizer(" " + country.capital, add_special_tokens=False)["input_ids"][0]
        logits = next_token_logits(model, prompt)
        total_p += float(torch.softmax(logits, -1)[answer])
        right += int(logits.argmax()) == answer
    return total_p / len(COUNTRIES), right


def noise_run(
    tokenizer: PreTrainedTokenizerBase,
    noise: float,
    config: NoiseConfig,
    on_step: Callable[[StepMetrics], None] | None = None,
    stop: threading.Event | None = None,
) -> NoiseResult | None:
    """Pre-train a fresh model on the corpus with `noise` of it corrupted; None if stopped early."""
    start = time.perf_counter()
    ids = noisy_corpus_ids(tokenizer, noise, config.kind, config.seed, config.n_documents)
    model = new_model(tokenizer, config.model, seed=config.seed)
    train_config = config.pretrain_config()
    history = pretrain(model, ids, train_config, on_step=(lambda m, _model: on_step(m)) if on_step else None, stop=stop)
    if len(history) < train_config.steps:
        return None
    p_correct, right = capital_knowledge(model, tokenizer)
    losses = tuple(round(m.loss, 4) for m in history)
    tail = losses[-20:]
    return NoiseResult(
        noise=noise,
        kind=config.kind,
        steps=len(history),
        train_loss=sum(tail) / len(tail),
        clean_loss=clean_loss(model, tokenizer, config.block_size),
        p_correct=p_correct,
        capitals_right=right,
        losses=losses,
        seconds=time.perf_counter() - start,
    )


def noise_experiment(
    tokenizer: PreTrainedTokenizerBase,
    levels: Sequence[float],
    config: NoiseConfig,
    on_result: Callable[[NoiseResult], None] | None = None,
    on_step: Callable[[float, StepMetrics], None] | None = None,
    stop: threading.Event | None = None,
) -> list[NoiseResult]:
    """One short run per noise level, in order; stops between (or inside) runs when `stop` is set."""
    results = []
    for noise in levels:
        if stop is not None and stop.is_set():
            break
        result = noise_run(
            tokenizer, noise, config, on_step=(lambda m, n=noise: on_step(n, m)) if on_step else None, stop=stop
        )
        if result is None:
            break
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def load_precomputed(path: Path = PRECOMPUTED) -> dict | None:
    """The saved default view: {"config": ..., "results": {kind: [NoiseResult as dict, ...]}}."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


@dataclass(frozen=True)
class SavedRuns:
    """The precomputed runs (`python -m llmlab.dataquality`): every kind at a few noise levels."""

    steps: int
    results: dict[str, list[NoiseResult]]  # kind -> one result per noise level, in order

    def nearest(self, kind: str, noise: float) -> tuple[NoiseResult, NoiseResult]:
        """(the saved run nearest to `noise`, the clean run) of one kind."""
        rows = self.results[kind]
        return min(rows, key=lambda r: abs(r.noise - noise)), next(r for r in rows if r.noise == 0)


def load_saved_runs(path: Path = PRECOMPUTED) -> SavedRuns | None:
    saved = load_precomputed(path)
    if saved is None:
        return None
    results = {kind: [NoiseResult(**{**r, "losses": tuple(r["losses"] or ())}) for r in rows]
               for kind, rows in saved["results"].items()}  # fmt: skip
    return SavedRuns(saved["config"]["steps"], results)


def main() -> None:
    """Precompute every kind at a few noise levels (16 runs of 300 steps: about 15 minutes on 2 idle cores)."""
    import argparse

    from llmlab.modeling import load_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default=str(PRECOMPUTED))
    parser.add_argument("--steps", type=int, default=NoiseConfig.steps)
    parser.add_argument("--levels", default="0,0.05,0.15,0.3,0.5,0.7")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_model("tiny-base", "cpu").tokenizer
    levels = [float(x) for x in args.levels.split(",")]
    out: dict = {"config": None, "levels": levels, "results": {}}
    clean_run = None  # noise 0 is the same run for every kind
    for kind in KINDS:
        config = NoiseConfig(kind=kind, steps=args.steps)
        out["config"] = {k: v for k, v in asdict(config).items() if k != "kind"}
        results = []
        for noise in levels:
            if noise == 0 and clean_run is not None:
                result = NoiseResult(**{**asdict(clean_run), "kind": kind})
            else:
                result = noise_run(tokenizer, noise, config)
                clean_run = clean_run or (result if noise == 0 else None)
            print(
                f"{kind:15s} noise {noise:4.2f}: clean loss {result.clean_loss:.3f}, p(right capital) "
                f"{result.p_correct:.3f}, {result.capitals_right}/40 right, {result.seconds:.0f} s",
                flush=True,
            )
            results.append({k: v for k, v in asdict(result).items() if k != "losses"})  # curves: not shown
        out["results"][kind] = results
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
