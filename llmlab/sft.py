"""Supervised fine-tuning with trl's `SFTTrainer`: the loss mask, a live run, LoRA, and what SFT changes.

The objective is pre-training's next-token loss; only the data changes (instruction -> response pairs in
the model's chat template) and the prompt tokens are masked out of the loss (`labels == -100`). Everything
here uses trl's own dataset preparation and collator, so the mask the page shows is the one trl trains on.

    run = run_sft(trainable_copy(loaded), loaded.tokenizer, polished_pairs(), SFTRunConfig())
    run.before.accuracy, run.after.accuracy        # held-out questions, e.g. 0.0 -> 0.6 with the defaults
    mask = loss_mask(loaded.tokenizer, "What is the capital of France?", "The capital of France is Paris.")
"""

from __future__ import annotations

import copy
import logging
import math
import random
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import datasets
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from transformers.trainer_pt_utils import LengthGroupedSampler
from trl import SFTConfig, SFTTrainer

from llmlab.corpus import COUNTRIES
from llmlab.instructions import (
    ANSWER_FORMATS,
    HELD_OUT_COUNTRIES,
    Instruction,
    fact_pairs,
    held_out_questions,
    mediocre_pairs,
    polished_pairs,
    to_trl_rows,
    wrong_fact_pairs,
)
from llmlab.jobs import DivergedError, Job, JobCallback, TaggedJob
from llmlab.modeling import LoadedModel, trainable_copy
from llmlab.nexttoken import context_limit, readable_piece, sample_answers
from llmlab.trainargs import demo_trainer_args

datasets.disable_progress_bars()
datasets.disable_caching()  # every run maps a fresh in-memory data set; nothing to reuse on disk
logging.getLogger("trl").setLevel(logging.ERROR)  # trl warns once per process about tokenizer details

IGNORE = -100  # label value the loss skips (PyTorch's cross_entropy ignore_index, trl's mask value)
# The learning rates the SFT page offers: from trl's default neighbourhood (2e-5, barely moves this 1M model)
# through the useful 1e-3..1e-2 to rates whose loss becomes NaN (above ~1), which the page lets one try.


class SFTInputError(ValueError):
    """An instruction/response pair the page cannot train on or show (empty, too long)."""


@dataclass(frozen=True)
class SFTRunConfig:
    """One SFT run; the defaults are the page's default live run (~14 CPU-seconds). Help texts = slider help."""

    samples: int = field(default=200, metadata={"help": "How many instruction-response pairs to train on."})
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps (each step sees one batch)."})
    learning_rate: float = field(
        default=3e-3,
        metadata={"help": "AdamW step size. 1e-3 to 3e-3 suits this 1M model (trl's default 2e-5 barely moves it)."},
    )
    batch_size: int = field(default=16, metadata={"help": "Instruction-response pairs per step."})
    completion_only_loss: bool = field(
        default=True, metadata={"help": "Loss on the response tokens only (off: on every token, prompt included)."}
    )
    freeze_embeddings: bool = field(
        default=True,
        metadata={
            "help": "Keep the token embeddings fixed. Otherwise every step pushes down the embeddings of tokens "
            "absent from the SFT data (held-out countries), and the model answers about a seen country instead."
        },
    )
    lora_rank: int = field(
        default=0, metadata={"help": "0 = full fine-tuning; r > 0 trains rank-r LoRA adapters only (peft)."}
    )
    warmup_steps: int = 5
    seed: int = 0


def sft_config(cfg: SFTRunConfig, output_dir: str, device: str = "cpu", eval_every: int = 0) -> SFTConfig:
    """trl's config for one run, with the CPU settings measured in docs/ARCHITECTURE.md (no bf16, no checkpointing...).
    `eval_every` > 0: trl also measures the loss of its eval sets at the start and every that many steps."""
    evaluation = (
        {"eval_strategy": "steps", "eval_steps": eval_every, "eval_on_start": True, "per_device_eval_batch_size": 64}
        if eval_every > 0
        else {}
    )
    return SFTConfig(
        output_dir=output_dir,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_steps,
        weight_decay=0.0,
        completion_only_loss=cfg.completion_only_loss,
        # Batches of similar lengths: a story (~90 tokens) no longer pads fifteen 20-token questions.
        train_sampling_strategy="group_by_length",
        max_length=None,  # inputs are checked against the context in `check_pair`
        **evaluation,
        **demo_trainer_args(device, cfg.seed),
    )


def lora_config(rank: int):
    """peft LoRA on every linear layer of GPT-2 (Conv1D weights are stored transposed: fan_in_fan_out)."""
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=["c_attn", "c_proj", "c_fc"],
        fan_in_fan_out=True,
        bias="none",
        task_type="CAUSAL_LM",
    )


class SeededSFTTrainer(SFTTrainer):
    """SFTTrainer whose length-grouped batches are drawn from its own seeded generator. The stock sampler
    uses torch's global RNG, which every thread shares: two sessions training at once would reshuffle
    each other's data order."""

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            sampler.generator = torch.Generator().manual_seed(self.args.seed)
        return sampler


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Instruction],
    cfg: SFTRunConfig,
    output_dir: str,
    callbacks: Sequence[TrainerCallback] = (),
    eval_pairs: Mapping[str, Sequence[Instruction]] | None = None,
    eval_every: int = 0,
) -> SFTTrainer:
    """An SFTTrainer on conversational prompt/completion rows (trl masks the prompt when asked). With `eval_pairs`
    ({name: pairs}) and `eval_every` > 0, trl logs `eval_<name>_loss` at step 0 and every `eval_every` steps."""
    for pair in [*pairs, *(p for ps in (eval_pairs or {}).values() for p in ps)]:
        check_pair(tokenizer, pair.prompt, pair.response, context_limit(model))
    dataset = datasets.Dataset.from_list(to_trl_rows(list(pairs)))
    evaluating = bool(eval_pairs) and eval_every > 0
    eval_sets = (
        {name: datasets.Dataset.from_list(to_trl_rows(list(ps))) for name, ps in eval_pairs.items()}
        if evaluating
        else None
    )
    if cfg.freeze_embeddings and cfg.lora_rank == 0:
        model.get_input_embeddings().requires_grad_(False)  # tied: the output layer stays fixed too
    device = next(model.parameters()).device.type
    trainer = SeededSFTTrainer(
        model=model,
        args=sft_config(cfg, output_dir, device, eval_every if evaluating else 0),
        train_dataset=dataset,
        eval_dataset=eval_sets,
        # A private copy: SFTTrainer sets the pad token, and the app's tokenizer is shared by every session.
        processing_class=copy.deepcopy(tokenizer),
        callbacks=list(callbacks),
        peft_config=lora_config(cfg.lora_rank) if cfg.lora_rank > 0 else None,
    )
    trainer.remove_callback(PrinterCallback)  # disable_tqdm adds it; it prints every log dict to stdout
    return trainer


# -- the loss mask, exactly as trl builds it ------------------------------------------------------------


@dataclass(frozen=True)
class MaskedExample:
    ids: tuple[int, ...]  # the formatted training text, tokenized
    pieces: tuple[str, ...]  # each token as readable text
    labels: tuple[int, ...]  # trl's collator labels: the token id where it counts in the loss, else -100

    @property
    def in_loss(self) -> tuple[bool, ...]:
        return tuple(label != IGNORE for label in self.labels)


def require_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    if not tokenizer.chat_template:
        raise SFTInputError(
            "This model's tokenizer has no chat template, so instruction/response pairs cannot be formatted: "
            "pick tiny-base, tiny-sft or an instruct model."
        )


def check_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, context: int) -> int:
    """Raise SFTInputError for a pair SFT cannot use; return its length in tokens."""
    if not prompt.strip():
        raise SFTInputError("The instruction is empty: type what the user asks.")
    if not response.strip():
        raise SFTInputError("The response is empty: type the answer the model should learn to give.")
    require_chat_template(tokenizer)
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    n_tokens = len(tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"])
    if n_tokens > context:
        raise SFTInputError(
            f"The formatted example is {n_tokens} tokens but the model's context is {context}: "
            "shorten the instruction or the response."
        )
    return n_tokens


def loss_mask(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    response: str,
    completion_only_loss: bool = True,
    context: int = 128,
) -> MaskedExample:
    """The example as trl trains on it: its dataset preparation, then its data collator's labels.

    A throw-away SFTTrainer on a one-row data set (no model weights are touched: a 1-layer stand-in
    model of the same vocabulary keeps it cheap)."""
    check_pair(tokenizer, prompt, response, context)
    pair = Instruction(prompt, response, "custom")
    with tempfile.TemporaryDirectory(prefix="llmlab-sft-mask-") as tmp:
        trainer = SFTTrainer(
            model=_mask_model(tokenizer),
            args=sft_config(SFTRunConfig(completion_only_loss=completion_only_loss), tmp),
            train_dataset=datasets.Dataset.from_list(to_trl_rows([pair])),
            processing_class=copy.deepcopy(tokenizer),
        )
        row = trainer.train_dataset[0]
        batch = trainer.data_collator([row])
    ids = tuple(int(i) for i in batch["input_ids"][0])
    return MaskedExample(
        ids=ids,
        pieces=tuple(readable_piece(tokenizer, i) for i in ids),
        labels=tuple(int(label) for label in batch["labels"][0]),
    )


def _mask_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A minimal GPT-2 with the tokenizer's vocabulary: SFTTrainer needs a model to build its collator.
    Fresh per call (~5 ms): the trainer writes the pad id into the model's config."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=8,
        n_layer=1,
        n_head=1,
        n_positions=8,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return GPT2LMHeadModel(config)


@dataclass(frozen=True)
class TokenLosses:
    per_token: tuple[float, ...]  # loss of predicting each token from the ones before it (nats); [0] is nan
    counted: tuple[bool, ...]  # whether each token counts in the loss (trl's labels != -100)

    @property
    def mean(self) -> float:
        """The loss the trainer reports for this example: the mean over the counted tokens (nats/token)."""
        values = [x for x, c in zip(self.per_token, self.counted, strict=True) if c]
        return sum(values) / len(values) if values else math.nan


@torch.inference_mode()
def token_losses(model: PreTrainedModel, example: MaskedExample) -> TokenLosses:
    """Per-token cross-entropy of `model` on every token of the example, and which ones trl counts."""
    device = next(model.parameters()).device
    ids = torch.tensor([example.ids], device=device)  # (1, T)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float()  # (1, T, V)
    # Position t predicts token t+1: logits[t] meets ids[t+1]. The first token has no prediction.
    losses = F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")  # (T-1,)
    counted = [False] + [label != IGNORE for label in example.labels[1:]]
    return TokenLosses(per_token=(math.nan, *(float(x) for x in losses)), counted=tuple(counted))


# -- greedy chat answers and held-out accuracy ----------------------------------------------------------


@dataclass(frozen=True)
class ChatAnswer:
    question: str
    text: str  # the greedy answer, without the end-of-text token
    stopped: bool  # ended with the end-of-text token (a chat model must learn to stop)

    @property
    def shown(self) -> str:
        """The answer as a table shows it: an answer that never stopped says so."""
        return self.text.strip() + ("" if self.stopped else " …(no end token)")


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """The chat prompt "<|user|>question<|assistant|>" as token ids (the model's own chat template)."""
    messages = [{"role": "user", "content": question}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


def greedy_answers(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str], max_new_tokens: int = 24
) -> list[ChatAnswer]:
    """Greedy answers to many questions in one batch (stops at the end-of-text token)."""
    if not questions:
        return []
    eos = tokenizer.eos_token_id
    prompts = [chat_prompt_ids(tokenizer, q) for q in questions]
    answers = sample_answers(model, tokenizer, prompts, max_new_tokens=max_new_tokens, greedy=True)
    return [
        ChatAnswer(question, tokenizer.decode(row[:-1] if row[-1:] == [eos] else row), row[-1:] == [eos])
        for question, row in zip(questions, answers, strict=True)
    ]


@dataclass(frozen=True)
class HeldOutScore:
    answers: tuple[ChatAnswer, ...]
    correct: tuple[bool, ...]  # the answer names the right fact
    well_formed: tuple[bool, ...]  # the answer has the polished format and stops

    @property
    def accuracy(self) -> float:
        return sum(self.correct) / max(1, len(self.correct))

    @property
    def format_rate(self) -> float:
        return sum(self.well_formed) / max(1, len(self.well_formed))

    @property
    def usable_rate(self) -> float:
        """Right fact *and* the house format: an answer a product could ship."""
        usable = [c and w for c, w in zip(self.correct, self.well_formed, strict=True)]
        return sum(usable) / max(1, len(usable))

    @property
    def rates(self) -> tuple[float, float, float]:
        """(right fact, house format, both): the three shares the comparison charts show."""
        return self.accuracy, self.format_rate, self.usable_rate


def is_correct(pair: Instruction, answer: ChatAnswer) -> bool:
    """The answer's first sentence names the expected fact as a whole word."""
    first = answer.text.strip().split(".")[0]
    return re.search(rf"\b{re.escape(pair.answer)}\b", first) is not None


def is_well_formed(pair: Instruction, answer: ChatAnswer) -> bool:
    pattern = ANSWER_FORMATS.get(pair.kind)
    return answer.stopped and pattern is not None and pattern.fullmatch(answer.text.strip()) is not None


def score_held_out(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: Sequence[Instruction] | None = None
) -> HeldOutScore:
    """Greedy answers to the held-out questions, scored for the right fact and for the format."""
    questions = list(questions or held_out_questions())
    answers = greedy_answers(model, tokenizer, [q.prompt for q in questions])
    return HeldOutScore(
        answers=tuple(answers),
        correct=tuple(is_correct(q, a) for q, a in zip(questions, answers, strict=True)),
        well_formed=tuple(is_well_formed(q, a) for q, a in zip(questions, answers, strict=True)),
    )


def held_out_answers(columns: Mapping[str, HeldOutScore], marked: HeldOutScore | None = None) -> dict[str, list]:
    """The held-out questions beside each score's answers (one column per label), plus a "right?" column of
    ✅/❌ for the `marked` score's answers."""
    table: dict[str, list] = {"held-out question": [q.prompt for q in held_out_questions()]}
    for label, score in columns.items():
        table[label] = [answer.shown for answer in score.answers]
    if marked is not None:
        table["right?"] = ["✅" if correct else "❌" for correct in marked.correct]
    return table


# -- judging answers without the house format (quality vs quantity) ----------------------------------------

FILLER = ("As an AI assistant", "I think", "not sure", "Good question")  # the mediocre data's tics
JUDGED = ("right fact, about the country asked", "full sentence, stops", "copies a training answer", "filler phrase")


def _values(kind: str) -> set[str]:
    return {{"capital": c.capital, "language": c.language, "continent": c.continent}[kind] for c in COUNTRIES}


def _names(text: str, value: str) -> bool:
    return re.search(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", text) is not None


def names_right_fact(question: Instruction, answer: ChatAnswer) -> bool:
    """The answer names the right value and no other value of its kind (Paris and no other capital): the
    project's correctness rule (`llmlab.preferences.true_reward`), whatever the wording."""
    if question.answer is None or not _names(answer.text, question.answer):
        return False
    return not any(_names(answer.text, v) for v in _values(question.kind) - {question.answer})


def answer_shape(text: str) -> str:
    """The answer with every country and fact replaced by "X": "The capital of X is X." for any country."""
    words = {c.name for c in COUNTRIES} | {v for kind in ANSWER_FORMATS for v in _values(kind)}
    for word in sorted(words, key=len, reverse=True):
        text = re.sub(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", "X", text)
    return text.strip()


@dataclass(frozen=True)
class AnswerJudgement:
    """Held-out answers judged on what a user needs, not on the polished template (which the polished run
    wins by construction): the right fact about the country asked ("Germany is in Europe." to "Where is Spain?"
    is not), a complete sentence that stops, copying, filler."""

    right_fact: tuple[bool, ...]  # names the right value, no other of its kind, and no other country
    full_sentence: tuple[bool, ...]  # starts with a capital letter, ends with ".", then the end token
    copied: tuple[bool, ...]  # word for word one of the run's training responses (about another country)
    filler: tuple[bool, ...]  # contains a tic of the mediocre data ("As an AI assistant", "I think"...)
    phrasings: int  # distinct answer shapes (countries and facts replaced by X) among the answers

    @property
    def rates(self) -> tuple[float, float, float, float]:
        """The shares of `JUDGED`, in its order."""
        n = max(1, len(self.right_fact))
        return tuple(sum(flags) / n for flags in (self.right_fact, self.full_sentence, self.copied, self.filler))


def judge_answers(score: HeldOutScore, training: Sequence[Instruction]) -> AnswerJudgement:
    """Judge a run's held-out answers (`score`, on `held_out_questions()`) against its training pairs."""
    responses = {p.response.strip() for p in training}
    questions, answers = held_out_questions(), score.answers
    texts = [a.text.strip() for a in answers]
    return AnswerJudgement(
        right_fact=tuple(
            names_right_fact(q, a) and not names_other_country(q, a) for q, a in zip(questions, answers, strict=True)
        ),
        full_sentence=tuple(
            a.stopped and t[:1].isupper() and t.endswith(".") for a, t in zip(answers, texts, strict=True)
        ),
        copied=tuple(t in responses for t in texts),
        filler=tuple(any(f.lower() in t.lower() for f in FILLER) for t in texts),
        phrasings=len({answer_shape(t) for t in texts}),
    )


# -- one run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SFTRun:
    before: HeldOutScore
    after: HeldOutScore
    losses: tuple[float, ...]  # trl's logged training loss per step
    wall_s: float  # trainer.train() only
    trainable_params: int
    total_params: int
    steps: int  # steps actually run (fewer when stopped)
    evals: tuple[tuple[str, int, float], ...] = ()  # (eval set, step, loss) when run with eval_pairs

    def eval_curve(self, name: str) -> tuple[list[int], list[float]]:
        """(steps, losses) of one eval set, e.g. "train" or "held-out"."""
        points = [(step, loss) for n, step, loss in self.evals if n == name]
        return [s for s, _ in points], [x for _, x in points]


def run_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Instruction],
    cfg: SFTRunConfig,
    callbacks: Sequence[TrainerCallback] = (),
    on_scored: Callable[[str, HeldOutScore], None] | None = None,
    eval_pairs: Mapping[str, Sequence[Instruction]] | None = None,
    eval_every: int = 0,
) -> tuple[SFTRun, PreTrainedModel]:
    """Score the held-out questions, train with SFTTrainer, score again. `model` is trained in place
    (pass a copy); with LoRA the returned model is the peft-wrapped one. `on_scored("before"|"after", s)`
    lets a page show each score as soon as it exists. `eval_pairs` ({name: pairs}) are scored by trl's own
    evaluation (the training loss, without a step) at step 0 and every `eval_every` steps: `SFTRun.evals`."""
    if not math.isfinite(cfg.learning_rate) or cfg.learning_rate <= 0:
        raise SFTInputError("The learning rate must be a positive number.")
    if not pairs:
        raise SFTInputError("No training pairs: choose at least one sample.")
    require_chat_template(tokenizer)
    before = score_held_out(model, tokenizer)
    if on_scored:
        on_scored("before", before)
    losses: list[float] = []
    evals: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="llmlab-sft-") as tmp:
        recorders = [DivergenceGuard(), _LossRecorder(losses, evals)]
        trainer = make_trainer(
            model, tokenizer, pairs, cfg, tmp, [*recorders, *callbacks], eval_pairs=eval_pairs, eval_every=eval_every
        )
        trained = trainer.model
        trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
        total = sum(p.numel() for p in trained.parameters())
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
        steps = trainer.state.global_step
    after = score_held_out(trained, tokenizer)
    if on_scored:
        on_scored("after", after)
    run = SFTRun(before, after, tuple(losses), wall, trainable, total, steps, tuple(evals))
    return run, trained


class DivergenceGuard(TrainerCallback):
    """Stops a run whose weights stopped being finite. trl 1.16's fused loss then logs 0.0, not NaN (the NaN
    log-probs are masked away), so the loss alone does not show it; the gradient norm does."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, (int, float)) and not math.isfinite(value):
                raise DivergedError(
                    f"The training diverged at step {state.global_step} (the {key.replace('_', ' ')} became "
                    f"{value}, the weights NaN): the learning rate is too high. Lower it and start again."
                )
        return control


class _LossRecorder(TrainerCallback):
    """Keeps trl's logged training loss per step and, given `evals`, each eval set's loss: eval_<name>_loss."""

    def __init__(self, losses: list[float], evals: list[tuple[str, int, float]] | None = None):
        self.losses = losses
        self.evals = evals

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
        for key, value in (logs or {}).items():
            if self.evals is not None and key.startswith("eval_") and key.endswith("_loss"):
                self.evals.append((key[len("eval_") : -len("_loss")], state.global_step, float(value)))


# -- the page's experiments: each is a `work(job)` function for a background Job ------------------------


@dataclass(frozen=True)
class Scored:
    """A live run's held-out score, "before" or "after" training."""

    stage: str
    score: HeldOutScore


@dataclass(frozen=True)
class ArmResult:
    """One finished arm of a comparison (quality vs quantity, LoRA vs full)."""

    run: int  # its index: its logged steps carry `run`
    label: str
    result: SFTRun
    base_change: float  # the largest change of an original weight (0 for LoRA)
    config: SFTRunConfig | None = None  # the arm's settings (for a download's card and reproduce.py)
    model: PreTrainedModel | None = field(default=None, compare=False, repr=False)  # this session's trained copy
    judgement: AnswerJudgement | None = None  # its held-out answers judged without the house format (quality)


@dataclass(frozen=True)
class Trained:
    """A job note: the model a run trained (this session's copy), for the page's download."""

    model: PreTrainedModel


def live_sft_work(loaded: LoadedModel, cfg: SFTRunConfig) -> Callable[[Job], SFTRun]:
    """One SFT run on the first `cfg.samples` polished pairs: held-out answers before, loss, answers after.
    Notes a `Scored` ("before", then "after") as soon as each score exists."""
    pairs = polished_pairs(seed=cfg.seed)[: cfg.samples]

    def work(job: Job) -> SFTRun:
        run, model = run_sft(
            trainable_copy(loaded),
            loaded.tokenizer,
            pairs,
            cfg,
            callbacks=[JobCallback(job)],
            on_scored=lambda stage, score: job.note(Scored(stage, score)),
        )
        job.note(Trained(model))
        return run

    return work


@dataclass(frozen=True)
class QualityConfig:
    """Quality vs quantity: the same steps on a few polished pairs or on many mediocre ones."""

    polished_samples: int = field(default=100, metadata={"help": "Clean pairs, one consistent answer style."})
    mediocre_samples: int = field(
        default=1000,
        metadata={"help": "Noisy pairs: mixed formats, filler ('As an AI assistant...'), 15% wrong facts."},
    )
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps for each of the two runs."})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW step size for both runs."})
    seed: int = 0
    eval_every: int = field(
        default=5,
        metadata={"help": "Every this many steps, the loss on 100 of the run's own pairs and on held-out pairs."},
    )


@dataclass(frozen=True)
class Comparison:
    labels: tuple[str, ...]  # one per run, e.g. ("100 polished", "1000 mediocre")
    runs: tuple[SFTRun, ...]  # fewer than labels when stopped early


EVAL_TRAIN, EVAL_HELD_OUT = "train", "held-out"  # the quality arms' eval sets (SFTRun.eval_curve names)
EVAL_PAIRS = 100  # the pairs of each eval set


def mediocre_held_out_pairs(n: int = EVAL_PAIRS, seed: int = 0) -> list[Instruction]:
    """Mediocre pairs drawn exactly as `mediocre_pairs` draws them, about the held-out countries only: the
    mediocre run's held-out loss is measured on its own kind of data (new countries, same noise)."""
    from llmlab.instructions import FACT_TEMPLATES, MEDIOCRE_STYLES, MEDIOCRE_WRONG_FACT_RATE, _fact_answer, _fields

    rng = random.Random(f"held-out-{seed}")
    pairs = []
    for _ in range(n):
        country = rng.choice(HELD_OUT_COUNTRIES)
        kind = rng.choice(("capital", "capital", "language", "continent"))
        fields = _fields(country)
        if rng.random() < MEDIOCRE_WRONG_FACT_RATE:
            others = [c for c in HELD_OUT_COUNTRIES if _fact_answer(kind, c) != _fact_answer(kind, country)]
            fields = {**_fields(rng.choice(others)), "c": fields["c"], "C": fields["C"]}
        question = rng.choice(FACT_TEMPLATES[kind][0]).format(**_fields(country))
        if rng.random() < 0.3:
            question = question[0].lower() + question[1:]
        response = rng.choice(MEDIOCRE_STYLES[kind]).format(**fields)
        pairs.append(Instruction(question, response, kind, country.name, _fact_answer(kind, country)))
    return pairs


def quality_arms(cfg: QualityConfig) -> list[tuple[str, list[Instruction], dict[str, list[Instruction]]]]:
    """(label, training pairs, eval sets) of both arms. Each arm's "train" eval set is (up to) 100 of its own
    pairs, its "held-out" set 100 pairs of the same kind about the 10 countries no training pair mentions:
    polished pairs (every phrasing) for the polished arm, mediocre ones for the mediocre arm."""
    polished = polished_fact_pairs(cfg.polished_samples, cfg.seed)
    mediocre = mediocre_pairs(cfg.mediocre_samples, cfg.seed)
    held_out_polished = fact_pairs(HELD_OUT_COUNTRIES)
    held_out_polished = (held_out_polished * 2)[:EVAL_PAIRS]  # 80 pairs, some twice: 100 like the other sets
    return [
        (
            f"{cfg.polished_samples} polished",
            polished,
            {EVAL_TRAIN: polished[:EVAL_PAIRS], EVAL_HELD_OUT: held_out_polished},
        ),
        (
            f"{cfg.mediocre_samples} mediocre",
            mediocre,
            {EVAL_TRAIN: mediocre[:EVAL_PAIRS], EVAL_HELD_OUT: mediocre_held_out_pairs(EVAL_PAIRS, cfg.seed)},
        ),
    ]


def quality_work(loaded: LoadedModel, cfg: QualityConfig) -> Callable[[Job], Comparison]:
    """Two runs from the same start: `cfg.polished_samples` polished pairs vs `cfg.mediocre_samples` mediocre.
    Each logs its loss on its own pairs and on held-out pairs every `cfg.eval_every` steps (`eval_<set>_loss`),
    and its finished `ArmResult` carries an `AnswerJudgement` of its held-out answers."""
    sft_cfg = SFTRunConfig(max_steps=cfg.max_steps, learning_rate=cfg.learning_rate, seed=cfg.seed)
    arms = quality_arms(cfg)
    return _comparison_work(
        loaded,
        [(label, pairs, sft_cfg) for label, pairs, _ in arms],
        eval_sets=[evals for _, _, evals in arms],
        eval_every=cfg.eval_every,
    )


@dataclass(frozen=True)
class LoraComparisonConfig:
    """LoRA vs full fine-tuning on the same pairs for the same steps."""

    samples: int = field(default=200, metadata={"help": "Polished pairs both runs train on."})
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps for each of the two runs."})
    full_learning_rate: float = field(default=2e-3, metadata={"help": "AdamW step size for full fine-tuning."})
    lora_rank: int = field(
        default=8, metadata={"help": "Rank r of each adapter: W + B·A with B (d×r), A (r×d); B starts at 0."}
    )
    lora_learning_rate: float = field(
        default=1e-2, metadata={"help": "LoRA usually needs a larger step: far fewer weights move."}
    )
    seed: int = 0


def lora_work(loaded: LoadedModel, cfg: LoraComparisonConfig) -> Callable[[Job], Comparison]:
    pairs = polished_pairs(seed=cfg.seed)[: cfg.samples]
    shared = {"max_steps": cfg.max_steps, "seed": cfg.seed, "samples": cfg.samples}
    full = SFTRunConfig(learning_rate=cfg.full_learning_rate, **shared)
    lora = SFTRunConfig(learning_rate=cfg.lora_learning_rate, lora_rank=cfg.lora_rank, **shared)
    return _comparison_work(loaded, (("full fine-tuning", pairs, full), (f"LoRA r={cfg.lora_rank}", pairs, lora)))


def _comparison_work(
    loaded: LoadedModel,
    arms: Sequence[tuple[str, Sequence[Instruction], SFTRunConfig]],
    eval_sets: Sequence[Mapping[str, Sequence[Instruction]]] | None = None,
    eval_every: int = 0,
) -> Callable[[Job], Comparison]:
    """Train the arms one after the other from the same start. With `eval_sets` (one {name: pairs} per arm),
    each arm also logs those losses every `eval_every` steps and its result is judged (`ArmResult.judgement`)."""

    def work(job: Job) -> Comparison:
        runs = []
        for n, (label, pairs, cfg) in enumerate(arms):
            if job.should_stop:
                break
            evals = eval_sets[n] if eval_sets else None
            run, model = run_sft(
                trainable_copy(loaded),
                loaded.tokenizer,
                pairs,
                cfg,
                [JobCallback(TaggedJob(job, run=n))],
                eval_pairs=evals,
                eval_every=eval_every,
            )
            judgement = judge_answers(run.after, pairs) if evals else None
            job.note(ArmResult(n, label, run, base_weight_change(loaded.model, model), cfg, model, judgement))
            runs.append(run)
        return Comparison(labels=tuple(label for label, _, _ in arms), runs=tuple(runs))

    return work


def loss_by_run(metrics: Sequence[dict], arms: Sequence[ArmResult]) -> dict[str, tuple[list, list]]:
    """Each arm's logged training loss, {label: (steps, losses)}, in run order; an arm still training (no
    ArmResult yet) is labelled "run N (training…)"."""
    labels = {arm.run: arm.label for arm in arms}
    rows = [m for m in metrics if "loss" in m]
    series = {}
    for run in sorted({int(m["run"]) for m in rows}):
        steps = [m["step"] for m in rows if m["run"] == run]
        losses = [m["loss"] for m in rows if m["run"] == run]
        series[labels.get(run, f"run {run + 1} (training…)")] = (steps, losses)
    return series


def eval_loss_by_run(metrics: Sequence[dict], arms: Sequence[ArmResult]) -> dict[str, dict[str, tuple[list, list]]]:
    """Each arm's logged eval losses, {label: {eval set: (steps, losses)}}, in run order (trl logs them as
    `eval_<set>_loss`); an arm still training is labelled "run N (training…)"."""
    labels = {arm.run: arm.label for arm in arms}
    series: dict[str, dict[str, tuple[list, list]]] = {}
    for m in metrics:
        for key, value in m.items():
            if key.startswith("eval_") and key.endswith("_loss") and "run" in m:
                run = int(m["run"])
                curves = series.setdefault(labels.get(run, f"run {run + 1} (training…)"), {})
                steps, losses = curves.setdefault(key[len("eval_") : -len("_loss")], ([], []))
                steps.append(m["step"])
                losses.append(value)
    return series


@dataclass(frozen=True)
class Gap:
    """Where a run's loss on its own pairs and on held-out pairs started and ended, and the held-out lowest."""

    train_start: float  # loss on (up to 100 of) its own pairs before training (step 0)
    held_out_start: float  # loss on held-out pairs of the same kind before training
    train: float  # ... at the last evaluation
    held_out: float
    best_held_out: float  # the lowest held-out loss of the run
    best_step: int  # ... and its step

    @property
    def gap(self) -> float:
        return self.held_out - self.train

    @property
    def ratio_start(self) -> float:
        """Held-out loss ÷ own-pairs loss before training (about 1: both sets are new to the model)."""
        return self.held_out_start / self.train_start

    @property
    def ratio(self) -> float:
        """Held-out loss ÷ own-pairs loss at the end: well above 1 when the run memorised its pairs."""
        return self.held_out / self.train

    @property
    def rise(self) -> float:
        """How far the held-out loss came back up from its lowest point (0 when it kept falling)."""
        return self.held_out - self.best_held_out


def loss_gap(run: SFTRun) -> Gap | None:
    """The run's train/held-out gap from its `evals` (None when it was run without eval sets)."""
    (_, train), (steps, held) = run.eval_curve(EVAL_TRAIN), run.eval_curve(EVAL_HELD_OUT)
    if not train or not held:
        return None
    best = min(range(len(held)), key=held.__getitem__)
    return Gap(train[0], held[0], train[-1], held[-1], held[best], steps[best])


def gap_rows(arms: Sequence[ArmResult]) -> list[dict[str, str]]:
    """One row per arm of the quality comparison: the loss gap and the judged held-out answers."""
    rows = []
    for arm in arms:
        gap, judged = loss_gap(arm.result), arm.judgement
        row = {"run": arm.label}
        if gap is not None:
            row |= {
                "loss on its own pairs": f"{gap.train_start:.2f} → {gap.train:.3f}",
                "held-out loss": f"{gap.held_out_start:.2f} → {gap.held_out:.3f}",
                "held-out ÷ own": f"{gap.ratio_start:.2f} → {gap.ratio:.2f}",
                "held-out lowest (step)": f"{gap.best_held_out:.3f} ({gap.best_step})",
            }
        if judged is not None:
            row |= {"distinct phrasings (of 30 answers)": str(judged.phrasings)}
        rows.append(row)
    return rows


def quality_summary(polished: ArmResult, mediocre: ArmResult) -> str:
    """What this comparison's numbers say, in words (markdown): the polished run's gap and copying, the
    mediocre run's missing gap and the shape of its answers."""
    gp, gm = loss_gap(polished.result), loss_gap(mediocre.result)
    jp, jm = polished.judgement, mediocre.judgement
    if gp is None or gm is None or jp is None or jm is None:
        return ""
    rp, rm = dict(zip(JUDGED, jp.rates, strict=True)), dict(zip(JUDGED, jm.rates, strict=True))
    flat = "kept falling" if gp.rise <= 1e-3 else f"came back up by {gp.rise:.3f} from {gp.best_held_out:.3f}"
    return (
        f"**{polished.label}**: the loss on its own pairs fell to {gp.train:.3f} while the held-out loss stalled "
        f"at {gp.held_out:.3f} (it {flat}): held-out ÷ own went from {gp.ratio_start:.1f} to **{gp.ratio:.1f}**, "
        f"memorising. On the held-out questions **{rp['copies a training answer']:.0%}** of its answers are a "
        f"training answer copied word for word (so about another country), and {rp[JUDGED[0]]:.0%} name the "
        f"right fact about the country asked.  \n**{mediocre.label}**: held-out ÷ own went from {gm.ratio_start:.1f} to "
        f"**{gm.ratio:.1f}** (no memorising: the run sees each pair at most about once), but its answers are the "
        f"average of its styles: {rm['full sentence, stops']:.0%} complete sentences, the right fact in "
        f"{rm[JUDGED[0]]:.0%}, filler in {rm['filler phrase']:.0%}, {jm.phrasings} distinct phrasing(s)."
    )


def arm_rows(arms: Sequence[ArmResult]) -> list[dict[str, str]]:
    """One row per arm: what it trained (parameters, share, time), where it ended, and whether the original
    weights moved (the LoRA vs full table)."""
    rows = []
    for arm in arms:
        run = arm.result
        rows.append(
            {
                "method": arm.label,
                "trainable parameters": f"{run.trainable_params:,}",
                "% of all": f"{run.trainable_params / run.total_params:.2%}",
                "train time (s)": f"{run.wall_s:.1f}",
                "final loss (nats/token)": f"{run.losses[-1]:.3f}" if run.losses else "",
                "held-out accuracy": f"{run.after.accuracy:.0%}",
                "largest change of an original weight": f"{arm.base_change:.2e}",
            }
        )
    return rows


def polished_fact_pairs(n: int, seed: int = 0) -> list[Instruction]:
    """The first n polished fact pairs (the quality arm compares like with like: facts only)."""
    return [p for p in polished_pairs(seed) if p.kind in ANSWER_FORMATS][:n]


def base_weight_change(original: PreTrainedModel, trained: PreTrainedModel) -> float:
    """Largest absolute change of any original weight (0.0 when LoRA left the base model untouched)."""
    before = dict(original.named_parameters())
    if hasattr(trained, "get_base_model"):  # peft: compare the frozen base layers, not the adapters
        trained = trained.get_base_model()
    change = 0.0
    for name, param in trained.named_parameters():
        if "lora_" in name:
            continue
        ref = before[name.replace(".base_layer", "")]
        change = max(change, float((param.detach().cpu() - ref.detach().cpu()).abs().max()))
    return change


# -- style, not knowledge ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FactProbe:
    country: str
    right: str  # the true capital
    wrong: str  # the capital the wrong-facts data teaches
    p_right: float  # P(" Paris." | "<|user|>What is the capital of France?<|assistant|>The capital of France is")
    p_wrong: float
    answer: str  # greedy chat answer


@torch.inference_mode()
def continuation_probability(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, question: str, prefix: str, continuation: str
) -> float:
    """P(continuation | chat prompt for `question` + the start of the answer `prefix`), all its tokens."""
    context = chat_prompt_ids(tokenizer, question) + tokenizer(prefix, add_special_tokens=False)["input_ids"]
    target = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    device = next(model.parameters()).device
    ids = torch.tensor([context + target], device=device)  # (1, T)
    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float()  # (T, V)
    logprobs = torch.log_softmax(logits, dim=-1)
    positions = torch.arange(len(context) - 1, len(context) + len(target) - 1, device=device)
    return float(logprobs[positions, ids[0, len(context) :]].sum().exp())


def probe_facts(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, wrong: dict[str, str]) -> list[FactProbe]:
    """For each country taught a wrong capital: how likely the right and the wrong answer are."""
    by_name = {c.name: c for c in COUNTRIES}
    questions = [f"What is the capital of {name}?" for name in wrong]
    answers = greedy_answers(model, tokenizer, questions)
    probes = []
    for (name, wrong_capital), question, answer in zip(wrong.items(), questions, answers, strict=True):
        prefix = f"The capital of {name} is"
        right = by_name[name].capital
        probes.append(
            FactProbe(
                country=name,
                right=right,
                wrong=wrong_capital,
                p_right=continuation_probability(model, tokenizer, question, prefix, f" {right}."),
                p_wrong=continuation_probability(model, tokenizer, question, prefix, f" {wrong_capital}."),
                answer=answer.text,
            )
        )
    return probes


@dataclass(frozen=True)
class WrongFactsResult:
    before: tuple[FactProbe, ...]
    after: tuple[FactProbe, ...]
    run: SFTRun  # its held-out scores show the other countries are still answered from pre-training
    frozen: bool = True  # trained with the token embeddings frozen (the default)

    @property
    def label(self) -> str:
        return "embeddings frozen (default)" if self.frozen else "embeddings trained"

    def table(self) -> dict[str, list[str]]:
        """Each country taught a wrong capital: both capitals, their probabilities before and after, and the
        greedy answer after SFT."""
        before, after = self.before, self.after
        return {
            "country": [p.country for p in after],
            "true / taught": [f"{p.right} / {p.wrong}" for p in after],
            "P(wrong) before": [f"{p.p_wrong:.2%}" for p in before],
            "P(wrong) after": [f"{p.p_wrong:.2%}" for p in after],
            "P(true) before": [f"{p.p_right:.2%}" for p in before],
            "P(true) after": [f"{p.p_right:.2%}" for p in after],
            "answer after SFT": [p.answer for p in after],
        }

    @property
    def taken_over(self) -> int:
        """Countries whose greedy answer after SFT names the taught wrong capital."""
        return sum(_names(p.answer, p.wrong) for p in self.after)

    @property
    def other_country_rate(self) -> float:
        """Share of held-out answers that talk about another country than the one asked (a seen one)."""
        questions, answers = held_out_questions(), self.run.after.answers
        flags = [names_other_country(q, a) for q, a in zip(questions, answers, strict=True)]
        return sum(flags) / max(1, len(flags))

    @property
    def right_about_asked_rate(self) -> float:
        """Share of held-out answers with the right fact and no other country ("Germany is in Europe." to
        "Where is Spain?" names the right continent, about the wrong country)."""
        questions, answers = held_out_questions(), self.run.after.answers
        flags = [
            names_right_fact(q, a) and not names_other_country(q, a) for q, a in zip(questions, answers, strict=True)
        ]
        return sum(flags) / max(1, len(flags))

    def summary(self) -> dict[str, str]:
        """This run's numbers, one column of the frozen-vs-trained table (`FREEZE_MEASURES`, in its order)."""
        n = len(self.after)
        return dict(
            zip(
                FREEZE_MEASURES,
                (
                    f"{self.taken_over}/{n}",
                    f"{sum(p.p_wrong for p in self.after) / max(1, n):.0%}",
                    f"{sum(p.p_right for p in self.after) / max(1, n):.1%}",
                    f"{self.run.after.accuracy:.0%}",
                    f"{self.right_about_asked_rate:.0%}",
                    f"{self.other_country_rate:.0%}",
                    f"{self.run.after.format_rate:.0%}",
                    f"{self.run.trainable_params:,}",
                ),
                strict=True,
            )
        )


FREEZE_MEASURES = (
    "taught countries whose answer is the wrong capital",
    "P(wrong capital), mean of the taught countries",
    "P(true capital), mean of the taught countries",
    "held-out countries: right fact",
    "held-out: right fact, about the country asked",
    "held-out answers about another country",
    "held-out answers in the polished format",
    "trainable parameters",
)


def names_other_country(question: Instruction, answer: ChatAnswer) -> bool:
    """The answer names a country other than the one asked about."""
    return any(c.name != question.country and _names(answer.text, c.name) for c in COUNTRIES)


@dataclass(frozen=True)
class WrongFactsConfig:
    """SFT on the polished set, except that five countries get a confidently wrong capital."""

    max_steps: int = field(default=80, metadata={"help": "Optimizer steps on the data with the wrong facts."})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW step size."})
    seed: int = 0
    freeze_embeddings: bool = field(
        default=True, metadata={"help": SFTRunConfig.__dataclass_fields__["freeze_embeddings"].metadata["help"]}
    )
    side_by_side: bool = field(
        default=True,
        metadata={
            "help": "Train a second copy the same way with the token embeddings (tied: also the output layer) "
            "trained, and show both. Twice the time."
        },
    )


def _wrong_facts_setup(cfg: WrongFactsConfig) -> tuple[list[Instruction], dict[str, str]]:
    pairs, wrong = wrong_fact_pairs(cfg.seed)
    return [p for p in pairs if p.kind in ANSWER_FORMATS], wrong  # facts only: shorter batches, same lesson


def _wrong_facts_arm(
    loaded: LoadedModel, cfg: WrongFactsConfig, freeze: bool, before: Sequence[FactProbe], job: Job | TaggedJob
) -> WrongFactsResult:
    pairs, wrong = _wrong_facts_setup(cfg)
    sft_cfg = SFTRunConfig(
        max_steps=cfg.max_steps, learning_rate=cfg.learning_rate, seed=cfg.seed, freeze_embeddings=freeze
    )
    run, model = run_sft(trainable_copy(loaded), loaded.tokenizer, pairs, sft_cfg, [JobCallback(job)])
    model.eval()
    after = probe_facts(model, loaded.tokenizer, wrong)
    return WrongFactsResult(tuple(before), tuple(after), run, freeze)


def wrong_facts_work(loaded: LoadedModel, cfg: WrongFactsConfig) -> Callable[[Job], WrongFactsResult]:
    """One run on the wrong-facts data (`cfg.freeze_embeddings` decides the embeddings)."""
    _, wrong = _wrong_facts_setup(cfg)

    def work(job: Job) -> WrongFactsResult:
        before = probe_facts(loaded.model, loaded.tokenizer, wrong)
        return _wrong_facts_arm(loaded, cfg, cfg.freeze_embeddings, before, job)

    return work


def wrong_facts_comparison_work(
    loaded: LoadedModel, cfg: WrongFactsConfig
) -> Callable[[Job], tuple[WrongFactsResult, ...]]:
    """The wrong-facts run with the embeddings frozen, then (with `cfg.side_by_side`) the same run with them
    trained, from the same start, seed and batches. Each finished run is noted (a `WrongFactsResult`); its
    logged steps carry `run` (0 frozen, 1 trained). Without side_by_side, one run as `cfg.freeze_embeddings`."""
    _, wrong = _wrong_facts_setup(cfg)
    arms = (True, False) if cfg.side_by_side else (cfg.freeze_embeddings,)

    def work(job: Job) -> tuple[WrongFactsResult, ...]:
        before = probe_facts(loaded.model, loaded.tokenizer, wrong)
        results = []
        for n, freeze in enumerate(arms):
            if job.should_stop:
                break
            result = _wrong_facts_arm(loaded, cfg, freeze, before, TaggedJob(job, run=n))
            job.note(result)
            results.append(result)
        return tuple(results)

    return work
