"""Data quality vs quantity (pre-training Q4): corrupt a fraction of the corpus, pre-train, compare.

Three kinds of corruption, each applied to a fraction `noise` of the documents (the rest stay clean):
- "random_capital": every capital named in the document is swapped for a random other capital, so the
  errors disagree with each other (they should be "outvoted");
- "repeated_lie": every capital is swapped for one fixed wrong capital per country, so the same error
  repeats (frequency wins: past 50% the lie becomes the answer);
- "shuffled_words": the document's words are shuffled (grammar destroyed, word counts kept).

Each run pre-trains the same fresh model (same seed, same batches) on one noisy corpus and reports the loss
on *clean* held-out text and, for 40 countries, how much probability the model gives the right capital, the
repeated lie's capital (`_LIE`: under random noise it is just one wrong capital among 39) and the most likely
wrong capital (`capital_beliefs`).

    results = noise_experiment(tokenizer, [0.0, 0.05, 0.3], NoiseConfig(kind="random_capital", steps=300))
    [(r.noise, r.clean_loss, r.p_correct) for r in results]

`python -m llmlab.dataquality` precomputes the page's default view (every kind, six levels, three seeds) into
models/tiny-base/data_quality.json. The shipped file holds the two fact corruptions at seeds 0, 1 and 2 (three
processes, `--kinds random_capital,repeated_lie --seeds N`, their "results" lists joined) and shuffled words at
seed 0 only, from an earlier run that did not measure the wrong capitals (NaN there; the page does not use them).
"""

from __future__ import annotations

import json
import math
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
    # NaN where not measured (the shuffled-words runs saved before these were added)
    p_lie: float = (
        math.nan
    )  # mean p of the country's fixed wrong capital (the repeated lie's; one wrong capital under noise)
    lie_top1: int = 0  # countries whose top-1 next token starts that wrong capital
    p_top_wrong: float = math.nan  # mean over countries of the largest p among the 39 wrong capitals
    p_wrong_each: float = math.nan  # mean p of one wrong capital (the 39 wrong capitals' total / 39)
    seed: int = 0


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


def lie_of(capital: str) -> str:
    """The one wrong capital that "repeated_lie" always puts in place of `capital`."""
    return _LIE[capital]


@dataclass(frozen=True)
class CapitalBeliefs:
    """What a model puts after "The capital of X is", averaged over the 40 countries (first tokens: the 40
    capitals' first tokens are 40 different tokens of the bundled tokenizer)."""

    p_right: float  # mean p(the right capital)
    right_top1: int  # countries where the right capital is the top-1 token
    p_lie: float  # mean p(the country's repeated lie, `lie_of`)
    lie_top1: int  # countries where the lie is the top-1 token
    p_top_wrong: float  # mean over countries of max p over the 39 wrong capitals
    p_wrong_each: float  # mean p of one wrong capital: the 39 wrong capitals' total p / 39


@torch.inference_mode()
def capital_beliefs(model, tokenizer: PreTrainedTokenizerBase) -> CapitalBeliefs:
    """p of the right capital, of the repeated lie, and of the wrong capitals, for the 40 countries."""
    first = {c.capital: tokenizer(" " + c.capital, add_special_tokens=False)["input_ids"][0] for c in COUNTRIES}
    sums = dict(right=0.0, lie=0.0, top_wrong=0.0, wrong_each=0.0)
    right_top1 = lie_top1 = 0
    for country in COUNTRIES:
        prompt = tokenizer(capital_prompt(country), add_special_tokens=False)["input_ids"]
        logits = next_token_logits(model, prompt)
        probs = torch.softmax(logits.float(), -1)
        answer, lie = first[country.capital], first[lie_of(country.capital)]
        wrong = torch.tensor([t for c, t in first.items() if c != country.capital])
        sums["right"] += float(probs[answer])
        sums["lie"] += float(probs[lie])
        sums["top_wrong"] += float(probs[wrong].max())
        sums["wrong_each"] += float(probs[wrong].mean())
        top = int(logits.argmax())
        right_top1 += top == answer
        lie_top1 += top == lie
    n = len(COUNTRIES)
    return CapitalBeliefs(
        p_right=sums["right"] / n,
        right_top1=right_top1,
        p_lie=sums["lie"] / n,
        lie_top1=lie_top1,
        p_top_wrong=sums["top_wrong"] / n,
        p_wrong_each=sums["wrong_each"] / n,
    )


def capital_knowledge(model, tokenizer: PreTrainedTokenizerBase) -> tuple[float, int]:
    """(mean p of the right capital's first token, countries where it is the top-1) over the 40 countries."""
    beliefs = capital_beliefs(model, tokenizer)
    return beliefs.p_right, beliefs.right_top1


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
    beliefs = capital_beliefs(model, tokenizer)
    losses = tuple(round(m.loss, 4) for m in history)
    tail = losses[-20:]
    return NoiseResult(
        noise=noise,
        kind=config.kind,
        steps=len(history),
        train_loss=sum(tail) / len(tail),
        clean_loss=clean_loss(model, tokenizer, config.block_size),
        p_correct=beliefs.p_right,
        capitals_right=beliefs.right_top1,
        p_lie=beliefs.p_lie,
        lie_top1=beliefs.lie_top1,
        p_top_wrong=beliefs.p_top_wrong,
        p_wrong_each=beliefs.p_wrong_each,
        losses=losses,
        seconds=time.perf_counter() - start,
        seed=config.seed,
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
    """The saved default view: {"config": ..., "levels": [...], "seeds": [...],
    "results": {kind: [NoiseResult as dict (without its loss curve), one per seed and level]}}."""
    if not path.is_file():
        return None
    return json.loads(path.read_text())


@dataclass(frozen=True)
class SeedSpread:
    """One metric of one kind at one noise level, over the saved seeds."""

    noise: float
    mean: float
    low: float
    high: float
    n_seeds: int


@dataclass(frozen=True)
class SavedRuns:
    """The precomputed runs (`python -m llmlab.dataquality`): every kind at a few noise levels, a few seeds."""

    steps: int
    results: dict[str, list[NoiseResult]]  # kind -> every saved run of that kind (each seed, each level)

    def levels(self, kind: str) -> list[float]:
        return sorted({r.noise for r in self.results[kind]})

    def seeds(self, kind: str) -> list[int]:
        return sorted({r.seed for r in self.results[kind]})

    def spread(self, kind: str, metric: str) -> list[SeedSpread]:
        """The metric (a NoiseResult field) at each level: mean, lowest and highest over the seeds."""
        out = []
        for noise in self.levels(kind):
            values = [float(getattr(r, metric)) for r in self.results[kind] if r.noise == noise]
            out.append(SeedSpread(noise, sum(values) / len(values), min(values), max(values), len(values)))
        return out

    def nearest_level(self, kind: str, noise: float) -> float:
        return min(self.levels(kind), key=lambda x: abs(x - noise))

    def nearest(self, kind: str, noise: float, seed: int = 0) -> tuple[NoiseResult, NoiseResult]:
        """(the saved run of `seed` nearest to `noise`, the clean run of that seed) of one kind."""
        rows = [r for r in self.results[kind] if r.seed == seed]
        return min(rows, key=lambda r: abs(r.noise - noise)), next(r for r in rows if r.noise == 0)


def lie_overtakes(saved: SavedRuns) -> tuple[float, float] | None:
    """(the last level where the truth still beats the repeated lie, the first where the lie wins), by the mean
    over seeds of the "repeated_lie" runs; None if the lie never wins at the saved levels."""
    right = saved.spread("repeated_lie", "p_correct")
    lie = saved.spread("repeated_lie", "p_lie")
    for i, (truth, lie_point) in enumerate(zip(right, lie, strict=True)):
        if lie_point.mean > truth.mean:
            return (right[i - 1].noise if i else 0.0), truth.noise
    return None


# (kind, metric, legend, colour index, dash): the beliefs chart's lines
BELIEF_LINES = (
    ("repeated_lie", "p_correct", "right capital · same lie repeated", 0, "solid"),
    ("repeated_lie", "p_lie", "the repeated lie · same lie repeated", 3, "solid"),
    ("random_capital", "p_correct", "right capital · random noise", 0, "dot"),
    ("random_capital", "p_top_wrong", "most likely wrong capital · random noise", 1, "dot"),
    ("random_capital", "p_wrong_each", "one wrong capital, on average · random noise", 5, "dot"),
)


def beliefs_figure(saved: SavedRuns, title: str, chosen_noise: float | None = None):
    """The right capital against the wrong ones, both fact corruptions on one chart: the mean over the saved seeds,
    with bars from the lowest to the highest seed."""
    import plotly.graph_objects as go

    from llmlab.plots import MUTED, SERIES_COLORS, legend_below, style

    fig = go.Figure()
    for kind, metric, name, color, dash in BELIEF_LINES:
        if kind not in saved.results:
            continue
        points = saved.spread(kind, metric)
        fig.add_scatter(
            x=[100 * p.noise for p in points],
            y=[p.mean for p in points],
            mode="lines+markers",
            name=name,
            line={"color": SERIES_COLORS[color], "dash": dash},
            error_y={
                "type": "data",
                "array": [p.high - p.mean for p in points],
                "arrayminus": [p.mean - p.low for p in points],
                "thickness": 1,
                "width": 3,
            },
            hovertemplate="%{y:.3f} at %{x:.0f}% noise<extra>" + name + "</extra>",
        )
    if chosen_noise is not None:
        fig.add_vline(x=100 * chosen_noise, line_dash="dash", line_color=MUTED)
    fig.update_yaxes(range=[0, 1.0], tickformat=".0%")
    fig = style(fig, title, "corrupted documents (% of the corpus)", "mean p(capital) after the prompt", height=400)
    return legend_below(fig)


def load_saved_runs(path: Path = PRECOMPUTED) -> SavedRuns | None:
    saved = load_precomputed(path)
    if saved is None:
        return None
    results = {kind: [NoiseResult(**{**r, "losses": tuple(r.get("losses") or ())}) for r in rows]
               for kind, rows in saved["results"].items()}  # fmt: skip
    return SavedRuns(saved["config"]["steps"], results)


def main() -> None:
    """Precompute every kind at a few noise levels and seeds (48 runs of 300 steps, ~25 s each on one idle core).

    Seed by seed, so the file written after every run is a usable view as soon as seed 0 is done."""
    import argparse

    from llmlab.modeling import load_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default=str(PRECOMPUTED))
    parser.add_argument("--steps", type=int, default=NoiseConfig.steps)
    parser.add_argument("--levels", default="0,0.05,0.15,0.3,0.5,0.7")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = load_model("tiny-base", "cpu").tokenizer
    levels = [float(x) for x in args.levels.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    kinds = args.kinds.split(",")
    out: dict = {"config": None, "levels": levels, "seeds": seeds, "results": {kind: [] for kind in kinds}}
    for seed in seeds:
        clean_run = None  # noise 0 is the same run for every kind
        for kind in kinds:
            config = NoiseConfig(kind=kind, steps=args.steps, seed=seed)
            out["config"] = {k: v for k, v in asdict(config).items() if k not in ("kind", "seed")}
            for noise in levels:
                if noise == 0 and clean_run is not None:
                    result = NoiseResult(**{**asdict(clean_run), "kind": kind})
                else:
                    result = noise_run(tokenizer, noise, config)
                    clean_run = clean_run or (result if noise == 0 else None)
                print(
                    f"seed {seed} {kind:15s} noise {noise:4.2f}: clean loss {result.clean_loss:.3f}, "
                    f"p(right) {result.p_correct:.3f} ({result.capitals_right}/40 top-1), p(lie) {result.p_lie:.3f} "
                    f"({result.lie_top1}/40), p(top wrong) {result.p_top_wrong:.3f}, p(one wrong) "
                    f"{result.p_wrong_each:.4f}, {result.seconds:.0f} s",
                    flush=True,
                )
                out["results"][kind].append({k: v for k, v in asdict(result).items() if k != "losses"})
                Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
