"""Beyond pairs: KTO (Ethayarajh et al. 2024) next to DPO, on the same judgements (the DPO card's Q5).

DPO needs two answers to the same prompt and a verdict on which is better. KTO needs one answer and a thumbs-up or
thumbs-down: trl's "unpaired preference" format, one row per rated answer:

    {"prompt": "<|user|>What is the capital of Spain?<|assistant|>",
     "completion": "The capital of Spain is Madrid.", "label": True}      # thumbs up (desirable)
    {"prompt": ..., "completion": "The capital of Belgium is Brussels.", "label": False}   # thumbs down

trl 1.16's `KTOTrainer` (`from trl import KTOTrainer, KTOConfig`; `trl.experimental.kto` is a deprecated alias)
with its default `loss_type="kto"`, per rated answer y with log-ratio Δ = log π(y|x) − log π_ref(y|x):

    z_ref = max(0, mean over the batch of log π(y'|x) − log π_ref(y'|x))   # a KL estimate: y' = another row's answer
    thumbs up:   loss = 1 − σ(β·(Δ − z_ref))                              # push Δ above the reference point
    thumbs down: loss = 1 − σ(β·(z_ref − Δ))                              # push Δ below it

So a single rated answer is a training example, and nothing needs a partner. The same shipped pairs give three
data sets here (`datasets`): the pairs as DPO reads them; the same verdicts unpaired (each pair's chosen answer a
thumbs-up, its rejected one a thumbs-down); and one rated answer per question (what a thumbs-up/down button on a
chat answer collects), which DPO cannot use at all: there is nothing to compare it with.

Two trl constraints (kto_trainer.py): KTO estimates z_ref from the other rows of the batch, so the batch needs at
least 2 rows and trl reads the data in order (`train_sampling_strategy="sequential"`): `train_kto` shuffles the
rows itself, with the run's seed, so a batch mixes questions and labels.

Measured (bench/bench_kto.py, seeds 0-2, 50 steps, β 0.1, lr 2e-4, sampled correctness on the 96 questions the
pairs are about): tiny-sft 84-85%; DPO with the NLL term 89-92% (KL 0.4-1.0 nats); KTO on the unpaired verdicts
89-90% (KL 2-5); KTO on one rated answer per question 73-82%: below the start, it does not help this model. On
the 24 held-out ("unseen") questions tiny-sft is already right 96-99%: every method lost a few points there.

    run = train_kto(start, unpaired(preference_pairs(split="train")), KTOSettings(steps=50))
    job = Job("kto-vs-dpo", comparison_work(start, pairs, KTOSettings(), DPOSettings())).start()
"""

from __future__ import annotations

import copy
import functools
import math
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from transformers import PreTrainedModel

from llmlab.dpo import DPOSettings, Pair, PairError, _MetricsLog, tokenize_pair, train_dpo
from llmlab.jobs import DivergedError, Job, TaggedJob
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import sequence_logps
from llmlab.policy_eval import drift_from_reference
from llmlab.preferences import asked, question_text, true_reward
from llmlab.trainargs import demo_trainer_args

Rated = Mapping[str, Any]  # {"prompt", "completion", "label": bool}: one answer with a thumbs-up or thumbs-down

LOG_KEYS = ("loss", "kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected")
DATASETS = ("DPO on the pairs", "KTO on the same labels, unpaired", "KTO on one rated answer per question")
KTO_MODELS_IN_MEMORY = 2  # policy + frozen reference, as DPO


class SettingsError(ValueError):
    """A KTO setting out of range; the message says which and why."""


@dataclass(frozen=True)
class KTOSettings:
    """One KTO run. The `help` texts are the page's slider help."""

    beta: float = field(
        default=0.1,
        metadata={
            "help": "β: how strongly the policy is tied to the reference, as in DPO. The loss of a thumbs-up answer "
            "is 1 − σ(β·(Δ − z_ref)), Δ its log-ratio log π/π_ref and z_ref a KL estimate from the batch."
        },
    )
    steps: int = field(
        default=50, metadata={"help": "Optimizer steps of KTOTrainer (one batch of rated answers each)."}
    )
    learning_rate: float = field(
        default=2e-4,
        metadata={
            "help": "AdamW step size (constant), the DPO tabs' default: 1e-4–3e-4 suits this 1M-parameter model."
        },
    )
    batch_size: int = field(
        default=16,
        metadata={
            "help": "Rated answers per step (at least 2: KTO's KL estimate pairs each answer with another row's "
            "prompt). 16 answers = the answers in 8 DPO pairs."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seeds the data order: the same seed gives the same run."})
    desirable_weight: float = field(
        default=1.0, metadata={"help": "Weight of the thumbs-up answers' loss (KTO's λ_D)."}
    )
    undesirable_weight: float = field(
        default=1.0, metadata={"help": "Weight of the thumbs-down answers' loss (KTO's λ_U)."}
    )

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.beta) and self.beta > 0):
            problems.append(f"β must be a positive number (got {self.beta!r}).")
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 5000):
            problems.append(f"Steps must be a whole number from 1 to 5000 (got {self.steps!r}).")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"The learning rate must be a positive number (got {self.learning_rate!r}).")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 2):
            problems.append(
                f"The batch size must be at least 2 (got {self.batch_size!r}): KTO estimates its reference point "
                "from the other answers of the batch."
            )
        for name in ("desirable_weight", "undesirable_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                problems.append(f"{name} must be a positive number (got {value!r}).")
        if problems:
            raise SettingsError(" ".join(problems))

    @staticmethod
    def help(name: str) -> str:
        return next(f.metadata.get("help", "") for f in fields(KTOSettings) if f.name == name)


# -- the data: pairs, and single rated answers -----------------------------------------------------------------


def unpaired(pairs: Sequence[Pair]) -> list[dict]:
    """The same verdicts without the pairing: each pair's chosen answer a thumbs-up, its rejected one a thumbs-down
    (what trl's `unpair_preference_dataset` does inside KTOTrainer when handed pairs)."""
    rows = []
    for pair in pairs:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows


def one_per_prompt(pairs: Sequence[Pair], seed: int = 0) -> list[dict]:
    """One rated answer per question, as a thumbs-up/down button on a chat answer collects them: for each prompt,
    one of its pairs and one side of it, picked at random (seeded; about half thumbs-up). No two rows share a
    prompt, so no pair can be formed: DPO has nothing to train on."""
    rng = random.Random(f"one-per-prompt-{seed}")
    by_prompt: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_prompt.setdefault(str(pair["prompt"]), []).append(pair)
    rows = []
    for prompt_pairs in by_prompt.values():
        pair = rng.choice(prompt_pairs)
        good = rng.random() < 0.5
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen" if good else "rejected"], "label": good})
    return rows


def check_rated(row: Rated) -> None:
    """Raise PairError with a plain message if KTO cannot learn from this row."""
    if not question_text(row["prompt"]).strip():
        raise PairError("The prompt is empty: a rated answer needs the question it answers.")
    if not str(row["completion"]).strip():
        raise PairError("The answer is empty: there is nothing to rate.")
    if not isinstance(row["label"], bool):
        raise PairError(f"The label must be True (thumbs up) or False (thumbs down), not {row['label']!r}.")


def pairs_possible(rows: Sequence[Rated]) -> int:
    """How many DPO pairs these rated answers allow: per prompt, (thumbs-up answers) × (thumbs-down answers)."""
    up: dict[str, int] = {}
    down: dict[str, int] = {}
    for row in rows:
        side = up if row["label"] else down
        side[str(row["prompt"])] = side.get(str(row["prompt"]), 0) + 1
    return sum(n * down.get(prompt, 0) for prompt, n in up.items())


def datasets(pairs: Sequence[Pair], seed: int = 0) -> dict[str, list[dict]]:
    """The three data sets of the comparison, from the same verdicts (DATASETS order)."""
    return {
        DATASETS[0]: [dict(p) for p in pairs],
        DATASETS[1]: unpaired(pairs),
        DATASETS[2]: one_per_prompt(pairs, seed),
    }


def example_rows(data: Mapping[str, Sequence[Mapping[str, Any]]], n: int = 2) -> dict[str, list[dict[str, str]]]:
    """A few rows of each data set, readable (question without chat markers, label as a thumb)."""
    out = {}
    for name, rows in data.items():
        shown = []
        for row in rows[:n]:
            readable = {"question": question_text(row["prompt"])}
            for key, value in row.items():
                if key == "prompt":
                    continue
                readable[key] = ("👍 True" if value else "👎 False") if key == "label" else str(value)
            shown.append(readable)
        out[name] = shown
    return out


def rated_logratios(
    policy: PreTrainedModel, reference: PreTrainedModel, tokenizer: Any, rows: Sequence[Rated]
) -> list[float]:
    """Δ = log π(answer|prompt) − log π_ref(answer|prompt) of each rated answer (nats, summed over the answer and
    its end-of-text token, tokenized as trl's KTO and DPO do): KTO pushes Δ up for a thumbs-up, down for a
    thumbs-down."""
    tokenized = [
        tokenize_pair(tokenizer, {"prompt": r["prompt"], "chosen": r["completion"], "rejected": r["completion"]})
        for r in rows
    ]
    prompts, answers = [t.prompt_ids for t in tokenized], [t.chosen_ids for t in tokenized]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = policy.training
    policy.eval()
    try:
        with torch.no_grad():
            pol = sequence_logps(policy, prompts, answers, pad)
            ref = sequence_logps(reference, prompts, answers, pad)
    finally:
        policy.train(was_training)
    return (pol - ref).tolist()


# -- training with trl -------------------------------------------------------------------------------------------


def kto_config(settings: KTOSettings, output_dir: str, device: str):
    """trl's KTOConfig for a small model on CPU (the measured settings in docs/ARCHITECTURE.md)."""
    from trl import KTOConfig

    return KTOConfig(
        output_dir=output_dir,
        beta=settings.beta,
        loss_type="kto",
        desirable_weight=settings.desirable_weight,
        undesirable_weight=settings.undesirable_weight,
        max_steps=settings.steps,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        lr_scheduler_type="constant",
        warmup_steps=0,
        max_length=128,  # the tiny models' context
        precompute_ref_log_probs=True,  # the reference is frozen: its log-probs once, before training
        precompute_ref_batch_size=64,
        **demo_trainer_args(device, settings.seed),
    )


@dataclass
class KTORun:
    policy: PreTrainedModel  # trained, eval mode
    reference: PreTrainedModel  # frozen copy of the start model
    settings: KTOSettings
    metrics: list[dict[str, float]]  # trl's on_log dicts, one per step
    train_s: float  # wall time of trainer.train() (with the reference pass)
    steps_done: int


def train_kto(start: LoadedModel, rows: Sequence[Rated], settings: KTOSettings, job: Job | None = None) -> KTORun:
    """Run trl's KTOTrainer on a private copy of `start`, with another frozen copy as the reference (passed
    explicitly, as for DPO). The rows are shuffled with the seed first: trl reads KTO data in order. A `job`
    receives every logged step and can stop the run; NaN weights raise DivergedError."""
    from datasets import Dataset
    from transformers import PrinterCallback

    if len(rows) < 2:
        raise PairError("KTO needs at least 2 rated answers (its reference point comes from the other rows).")
    for row in rows:
        check_rated(row)
    order = [dict(r) for r in rows]
    random.Random(settings.seed).shuffle(order)
    policy = trainable_copy(start)
    reference = copy.deepcopy(start.model).eval().requires_grad_(False)
    log = _MetricsLog(job)
    with tempfile.TemporaryDirectory(prefix="llmlab-kto-") as out:
        trainer = _trainer_class()(
            model=policy,
            ref_model=reference,
            args=kto_config(settings, out, start.device),
            train_dataset=Dataset.from_list(order),
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
    return KTORun(policy, reference, settings, log.metrics, train_s, trainer.state.global_step)


@functools.cache
def _trainer_class():
    """trl's KTOTrainer, whose reference pass (`precompute_ref_log_probs=True`) is batched by length: trl's own pads
    batches of 64 in data order (and writes a cache file), ~3x slower here, as for DPO (llmlab.dpo). The same sums
    of log-probs of each answer and of its mismatched KL answer (tests/test_kto.py compares them)."""
    from datasets import Dataset
    from trl import KTOTrainer

    class SortedReferenceKTOTrainer(KTOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            if name != "train" or not isinstance(dataset, Dataset) or self.ref_model is None:
                return super()._precompute_ref_logps(dataset, name, batch_size)
            tok = self.processing_class
            pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
            prompts = dataset["prompt_ids"]
            columns = {"ref_logps": dataset["completion_ids"]}
            if self.calculate_KL:
                columns["ref_KL_logps"] = dataset["KL_completion_ids"]
            for column, answers in columns.items():
                dataset = dataset.add_column(column, sequence_logps(self.ref_model, prompts, answers, pad).tolist())
            return dataset

    return SortedReferenceKTOTrainer


# -- the comparison: DPO and KTO from the same start, scored the same way ------------------------------------------


@dataclass(frozen=True)
class MethodResult:
    """One policy on the questions: what it trained on, what it reached, what it cost."""

    name: str  # DATASETS entry, or the start model
    method: str  # "start", "DPO" or "KTO"
    examples: int  # training rows: pairs for DPO, rated answers for KTO
    thumbs_up: int  # rows with a thumbs-up (KTO), or pairs (DPO: each holds one)
    steps: int
    correct_unseen: float  # share of sampled answers to the 24 held-out questions that are right
    correct_covered: float  # ... to the 96 questions the training data is about (fresh samples)
    kl: float  # KL(π ‖ π_ref) summed along the sampled answers (all 120 questions), nats per answer
    length: float  # mean sampled answer length (all 120 questions), tokens
    train_s: float  # wall time of the trainer, its reference pass included (0 for the start model)


SAMPLES = 4  # answers sampled per question (llmlab.policy_eval.SAMPLES_PER_PROMPT)


def evaluate(
    name: str,
    method: str,
    policy: PreTrainedModel,
    start: LoadedModel,
    examples: int = 0,
    thumbs_up: int = 0,
    steps: int = 0,
    train_s: float = 0.0,
    seed: int = 0,
) -> MethodResult:
    """Sampled correctness on the 24 held-out ("unseen") questions and on the 96 the pairs are about ("test":
    fresh samples), KL to the start model and answer length over all 120; the same sampler seed for every policy."""
    tok = start.tokenizer
    unseen, covered = asked("unseen"), asked("test")
    a = drift_from_reference(policy, start.model, tok, unseen, true_reward, seed=seed, samples=SAMPLES)
    b = drift_from_reference(policy, start.model, tok, covered, true_reward, seed=seed, samples=SAMPLES)
    n_a, n_b = len(unseen), len(covered)
    kl = (a.kl * n_a + b.kl * n_b) / (n_a + n_b)
    length = (a.length * n_a + b.length * n_b) / (n_a + n_b)
    return MethodResult(
        name, method, examples, thumbs_up, steps, float(a.reward or 0.0), float(b.reward or 0.0), kl, length,
        train_s,
    )  # fmt: skip


def comparison_work(
    start: LoadedModel,
    pairs: Sequence[Pair],
    kto: KTOSettings,
    dpo: DPOSettings,
    include: Sequence[str] = DATASETS,
) -> Callable[[Job], list[MethodResult]]:
    """The start model, then one run per data set (`datasets(pairs, kto.seed)`, those named in `include`), each
    scored by `evaluate` with the same sampler seed. Logged steps carry `run` (0, 1, 2: the index
    in DATASETS); a `MethodResult` note per finished run."""
    data = datasets(pairs, kto.seed)
    plan = [name for name in DATASETS if name in include]

    def work(job: Job) -> list[MethodResult]:
        results = [evaluate(f"{start.name} (start)", "start", start.model, start, seed=kto.seed)]
        job.note(results[0])
        for name in plan:
            if job.should_stop:
                break
            rows = data[name]
            tagged = TaggedJob(job, run=DATASETS.index(name))
            if name == DATASETS[0]:
                run = train_dpo(start, rows, dpo, tagged)
                method, up = "DPO", len(rows)
            else:
                run = train_kto(start, rows, kto, tagged)
                method, up = "KTO", sum(bool(r["label"]) for r in rows)
            if job.should_stop and run.steps_done < run.settings.steps:
                break
            result = evaluate(name, method, run.policy, start, len(rows), up, run.steps_done, run.train_s, kto.seed)
            results.append(result)
            job.note(result)
        return results

    return work


def result_rows(results: Sequence[MethodResult]) -> list[dict[str, Any]]:
    """The comparison table (and its CSV): one row per policy."""
    return [
        {
            "policy": r.name,
            "method": r.method,
            "training rows": r.examples,
            "right answers, 24 held-out questions (%)": round(100 * r.correct_unseen, 1),
            "right answers, 96 trained-on questions (%)": round(100 * r.correct_covered, 1),
            "KL to start (nats/answer)": round(r.kl, 2),
            "answer length (tokens)": round(r.length, 1),
            "train time (s)": round(r.train_s, 1),
        }
        for r in results
    ]
