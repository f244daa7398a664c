"""Model collapse: a model fine-tuned on its own answers, generation after generation (SFT card, question 4).

Generation 0 is the start model (tiny-sft). Each generation answers the instruction prompts of the polished set
(llmlab/instructions.py) by sampling at a temperature, and the next generation is that model fine-tuned with trl's
SFTTrainer (`llmlab.sft.make_trainer`) on those answers: the student becomes the next teacher. Two runs from the
same start, the same prompts, steps and seed:

- "self only": every training pair is the model's own answer;
- "mixed": a share of each generation's pairs (`real_fraction`) are the real polished pairs instead, the card's
  "always anchor with a slice of real human data".

Each generation is measured on the same footing:
- distinct-1 / distinct-2 of its sampled answers (distinct n-grams / all n-grams, over every answer it wrote);
- the entropy of its next-token distribution along fixed real answers (teacher forced, response tokens only);
- the share of its sampled fact answers that name the right fact (`llmlab.preferences.true_reward`, the project's
  verifiable check: the right value and no other value of the same kind);
- how many of the corpus's story places, objects and activities its stories still use (the long tail);
- a few of its sampled answers, to read the narrowing.

Sampling is `llmlab.nexttoken.sample_answers` (a private generator, so other sessions' training cannot disturb it)
at the experiment's temperature. Answers that never reached the end-of-text
token are left out of the next training set (a data pipeline would drop them too).

Measured on tiny-sft (3 generations, 96 prompts x 2 answers, 30 steps a generation, half real pairs in the mixed
run; seeds 0, 1, 2):
- temperature 0.5 (the default: synthetic data is usually sampled greedily-ish from its teacher): the answers
  narrow. Self only, distinct-2 0.17 -> 0.11-0.13 and entropy 0.35 -> 0.28-0.29 nats, falling at every
  generation; mixed 0.14-0.15 and 0.31-0.34. The stories' places, objects and activities: 15-16 of 19 -> 3-5
  (mixed 8-11), every story in "a sunny farm" by generation 3 on seeds 0 and 1. Right facts stay at 100%: sharpening keeps the likeliest answer,
  and this model's likeliest answers are right.
- temperature 1.0: no narrowing on this model, a drift: distinct-2 and entropy rise (0.35 -> 0.41-0.48 nats),
  and the model's own mistakes are trained in: right facts 94-97% -> 76-81% self only, 84-89% mixed.

Training is trl's SFTTrainer through `llmlab.sft.make_trainer`, as everywhere on the SFT page: building a trainer
(dataset preparation included) costs 0.13-0.22 s of a ~6 s generation (sampling ~2 s, the 30 steps ~4 s; one torch
thread, bench/bench_collapse.py), so no lighter path is needed. The default run: 36 s wall, 24 s CPU at load 4 on
the shared 2-core machine.

    result = run_collapse(loaded, CollapseConfig())
    [g.distinct_2 for g in result.runs["self only"]]     # generation 0, 1, 2, 3: falls
    [g.distinct_2 for g in result.runs["mixed"]]         # falls less
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from llmlab.corpus import ACTIONS, COUNTRIES, OBJECTS, PLACES
from llmlab.instructions import Instruction, polished_pairs
from llmlab.jobs import Job, JobCallback, TaggedJob
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit, sample_answers
from llmlab.preferences import Question, true_reward
from llmlab.sft import DivergenceGuard, SFTRunConfig, chat_prompt_ids, make_trainer

SELF_ONLY = "self only"
MIXED = "mixed"
FACT_KINDS = ("capital", "language", "continent")
REFERENCE_PAIRS = 60
STORY_CHOICES = len(PLACES) + len(OBJECTS) + len(ACTIONS)


@dataclass(frozen=True)
class CollapseConfig:
    """Self-training, generation after generation; the defaults are the page's default run."""

    generations: int = field(default=3, metadata={"help": "Fine-tuning rounds, each on the previous model's answers."})
    temperature: float = field(
        default=0.5,
        metadata={
            "help": "Sampling temperature of the answers each generation writes for the next one. Below 1 the "
            "likely answers are over-represented (synthetic data is usually sampled this way)."
        },
    )
    prompts: int = field(default=96, metadata={"help": "Instruction prompts each generation answers."})
    answers_per_prompt: int = field(default=2, metadata={"help": "Answers sampled for each prompt."})
    real_fraction: float = field(
        default=0.5, metadata={"help": "Mixed run: share of each generation's training pairs that are real pairs."}
    )
    max_steps: int = field(default=30, metadata={"help": "Optimizer steps per generation."})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW step size."})
    batch_size: int = field(default=16, metadata={"help": "Pairs per step."})
    max_new_tokens: int = field(default=64, metadata={"help": "Longest answer sampled, in tokens."})
    seed: int = 0

    def sft(self, generation: int) -> SFTRunConfig:
        return SFTRunConfig(
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            warmup_steps=min(5, self.max_steps // 5),
            seed=self.seed + generation,
        )


# -- sampling -------------------------------------------------------------------------------------------------


@torch.inference_mode()
def sample_at(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[list[int]],
    temperature: float,
    max_new_tokens: int = 64,
    seed: int = 0,
) -> list[list[int]]:
    """Answer tokens (up to and including EOS) for each prompt, sampled from softmax(logits / temperature) with a
    private generator (temperature 0 = greedy): `llmlab.nexttoken.sample_answers`."""
    return sample_answers(model, tokenizer, prompt_ids, max_new_tokens, seed=seed, temperature=temperature)


@dataclass(frozen=True)
class Sample:
    pair: Instruction  # the prompt it answers (and, for facts, the right value)
    text: str  # the sampled answer, without the end-of-text token
    stopped: bool  # it ended with the end-of-text token


def sample_answers_to(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Instruction],
    cfg: CollapseConfig,
    seed: int,
) -> list[Sample]:
    """`cfg.answers_per_prompt` answers to each pair's prompt, at `cfg.temperature`."""
    eos = tokenizer.eos_token_id
    prompts = [chat_prompt_ids(tokenizer, p.prompt) for p in pairs]
    samples = []
    for round_ in range(cfg.answers_per_prompt):
        rows = sample_at(model, tokenizer, prompts, cfg.temperature, cfg.max_new_tokens, seed=seed * 1000 + round_)
        for pair, row in zip(pairs, rows, strict=True):
            stopped = row[-1:] == [eos]
            samples.append(Sample(pair, tokenizer.decode(row[:-1] if stopped else row).strip(), stopped))
    return samples


# -- measures -------------------------------------------------------------------------------------------------


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (words, lower case): 1.0 when nothing repeats."""
    grams = []
    for text in texts:
        words = text.lower().split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def story_choices(texts: Sequence[str]) -> int:
    """How many of the corpus's story places, objects and activities (6 + 7 + 6) the stories use at all: the long
    tail a narrowing model loses first."""
    return sum(any(value in text for text in texts) for value in (*PLACES, *OBJECTS, *ACTIONS))


def fact_question(pair: Instruction) -> Question | None:
    """The canonical question behind a fact pair (any phrasing), for `true_reward`."""
    if pair.kind not in FACT_KINDS or pair.country is None:
        return None
    country = next(c for c in COUNTRIES if c.name == pair.country)
    return Question(country, pair.kind)


def is_right(sample: Sample) -> bool | None:
    """True/False for a fact answer (right value, no other value of its kind), None for other prompts."""
    question = fact_question(sample.pair)
    return None if question is None else true_reward(question.prompt, sample.text) == 1.0


@torch.inference_mode()
def next_token_entropy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Instruction]
) -> float:
    """Mean entropy (nats) of the model's next-token distribution at every response position of fixed real pairs
    (teacher forced: the same contexts for every generation), the end-of-text token included."""
    device = model.device
    rows, starts = [], []
    for pair in pairs:
        messages = [{"role": "user", "content": pair.prompt}, {"role": "assistant", "content": pair.response}]
        ids = list(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"])
        rows.append(ids[: context_limit(model)])
        starts.append(len(chat_prompt_ids(tokenizer, pair.prompt)))
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    was_training = model.training
    model.eval()
    try:
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
    finally:
        model.train(was_training)
    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).sum(-1)  # (B, T): entropy of the distribution over the token after t
    counted = torch.zeros_like(mask, dtype=torch.bool)
    for i, (r, s) in enumerate(zip(rows, starts, strict=True)):
        counted[i, s - 1 : len(r) - 1] = True  # positions predicting the response tokens
    return float(entropy[counted].mean())


@dataclass(frozen=True)
class Generation:
    run: str  # SELF_ONLY or MIXED
    generation: int  # 0 = the start model
    distinct_1: float
    distinct_2: float
    entropy: float  # nats per token, along fixed real answers
    correct: float  # share of sampled fact answers that are right
    unique_answers: float  # distinct answers / answers (whole texts)
    story_choices: int  # places, objects and activities its stories use (of 19)
    samples: tuple[Sample, ...] = field(repr=False)  # what this generation wrote (the next one trains on it)
    train_pairs: int = 0  # pairs the generation *was trained on* (0 for the start model)
    real_pairs: int = 0  # of which real
    wall_s: float = 0.0

    def examples(self, prompts: Sequence[str]) -> dict[str, list[str]]:
        """The answers this generation wrote to each of `prompts`."""
        return {p: [s.text for s in self.samples if s.pair.prompt == p] for p in prompts}


def measure(
    run: str,
    generation: int,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Instruction],
    reference: Sequence[Instruction],
    cfg: CollapseConfig,
) -> Generation:
    """Sample this generation's answers (the next one's data) and measure them and the model."""
    samples = sample_answers_to(model, tokenizer, prompts, cfg, seed=cfg.seed * 100 + generation)
    texts = [s.text for s in samples]
    verdicts = [v for v in (is_right(s) for s in samples) if v is not None]
    return Generation(
        run=run,
        generation=generation,
        distinct_1=distinct_n(texts, 1),
        distinct_2=distinct_n(texts, 2),
        entropy=next_token_entropy(model, tokenizer, reference),
        correct=sum(verdicts) / len(verdicts) if verdicts else 0.0,
        unique_answers=len(set(texts)) / max(1, len(texts)),
        story_choices=story_choices([s.text for s in samples if s.pair.kind == "story"]),
        samples=tuple(samples),
    )


# -- the experiment -------------------------------------------------------------------------------------------


def balanced(pairs: Sequence[Instruction]) -> list[Instruction]:
    """The pairs reordered to take their kinds in turn (capital, language, continent, arithmetic, story, code...),
    so that any prefix weighs stories and code, where there is most to lose, as much as each kind of fact."""
    by_kind: dict[str, list[Instruction]] = {}
    for pair in pairs:
        by_kind.setdefault(pair.kind, []).append(pair)
    out: list[Instruction] = []
    for i in range(max((len(v) for v in by_kind.values()), default=0)):
        out += [group[i] for group in by_kind.values() if i < len(group)]
    return out


def prompt_set(cfg: CollapseConfig) -> tuple[list[Instruction], list[Instruction]]:
    """(the prompts every generation answers, the real pairs the mixed run draws from: a fresh polished set)."""
    return balanced(polished_pairs(seed=cfg.seed))[: cfg.prompts], polished_pairs(seed=cfg.seed + 1)


def training_pairs(
    samples: Sequence[Sample], real: Sequence[Instruction], real_fraction: float, rng: random.Random
) -> tuple[list[Instruction], int]:
    """The next generation's data: the answers that stopped, with `real_fraction` of the set replaced by real
    pairs (the total stays the same). Returns (pairs, how many are real)."""
    synthetic = [Instruction(s.pair.prompt, s.text, s.pair.kind, s.pair.country, s.pair.answer) for s in samples]
    synthetic = [p for p, s in zip(synthetic, samples, strict=True) if s.stopped and s.text]
    total = len(synthetic)
    n_real = round(real_fraction * total)
    if n_real == 0:
        return synthetic, 0
    kept = rng.sample(synthetic, total - n_real)
    chosen = [real[i % len(real)] for i in rng.sample(range(max(n_real, len(real))), n_real)]
    pairs = kept + chosen
    rng.shuffle(pairs)
    return pairs, n_real


@dataclass(frozen=True)
class CollapseResult:
    config: CollapseConfig
    runs: dict[str, tuple[Generation, ...]]  # SELF_ONLY / MIXED -> generation 0..N (fewer when stopped)

    def series(self, attr: str) -> dict[str, tuple[list[int], list[float]]]:
        """{run: (generations, values)} of one measure, for a line per run."""
        return {
            name: ([g.generation for g in gens], [getattr(g, attr) for g in gens]) for name, gens in self.runs.items()
        }

    def rows(self) -> list[dict]:
        return table_rows(g for gens in self.runs.values() for g in gens)


def table_rows(generations: Iterable[Generation]) -> list[dict]:
    """One row per generation of each run: every measure, and what it was trained on."""
    return [
        {
            "run": g.run,
            "generation": g.generation,
            "distinct-1": round(g.distinct_1, 4),
            "distinct-2": round(g.distinct_2, 4),
            "entropy (nats/token)": round(g.entropy, 4),
            "right facts": round(g.correct, 4),
            "distinct answers": round(g.unique_answers, 4),
            f"story places, objects, activities (of {STORY_CHOICES})": g.story_choices,
            "trained on (pairs)": g.train_pairs,
            "of which real": g.real_pairs,
        }
        for g in generations
    ]


def run_collapse(
    loaded: LoadedModel,
    cfg: CollapseConfig,
    job: Job | None = None,
    on_generation: Callable[[Generation], None] | None = None,
) -> CollapseResult:
    """Both runs, one after the other: generation 0 (the start model, measured once for both), then
    `cfg.generations` rounds of sample -> fine-tune on the samples (mixed: with real pairs) -> measure."""
    tokenizer = loaded.tokenizer
    prompts, real = prompt_set(cfg)
    reference = balanced(real)[:REFERENCE_PAIRS]  # fixed real answers along which the entropy is read
    start = time.perf_counter()
    g0 = measure(SELF_ONLY, 0, loaded.model, tokenizer, prompts, reference, cfg)
    g0 = replace(g0, wall_s=time.perf_counter() - start)
    runs: dict[str, list[Generation]] = {}
    for n, (name, fraction) in enumerate(((SELF_ONLY, 0.0), (MIXED, cfg.real_fraction))):
        first = replace(g0, run=name)
        runs[name] = [first]
        if on_generation:
            on_generation(first)
        model = trainable_copy(loaded)
        rng = random.Random(cfg.seed)
        previous = first
        for generation in range(1, cfg.generations + 1):
            if job is not None and job.should_stop:
                break
            start = time.perf_counter()
            pairs, n_real = training_pairs(previous.samples, real, fraction, rng)
            callbacks = [DivergenceGuard()]
            if job is not None:
                callbacks.append(JobCallback(TaggedJob(job, run=n, generation=generation)))
            with tempfile.TemporaryDirectory(prefix="llmlab-collapse-") as tmp:
                trainer = make_trainer(model, tokenizer, pairs, cfg.sft(generation), tmp, callbacks)
                trainer.train()
            model = trainer.model
            current = measure(name, generation, model, tokenizer, prompts, reference, cfg)
            current = replace(current, train_pairs=len(pairs), real_pairs=n_real, wall_s=time.perf_counter() - start)
            runs[name].append(current)
            if on_generation:
                on_generation(current)
            previous = current
    return CollapseResult(cfg, {name: tuple(gens) for name, gens in runs.items()})


def collapse_work(loaded: LoadedModel, cfg: CollapseConfig) -> Callable[[Job], CollapseResult]:
    """The page's job: both runs; every generation is noted (`Generation`) as soon as it is measured."""

    def work(job: Job) -> CollapseResult:
        return run_collapse(loaded, cfg, job, on_generation=job.note)

    return work
