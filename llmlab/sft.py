"""Supervised fine-tuning with trl's `SFTTrainer`: the loss mask, a live run, LoRA, and what SFT changes.

The objective is pre-training's next-token loss; only the data changes (instruction -> response pairs in
the model's chat template) and the prompt tokens are masked out of the loss (`labels == -100`). Everything
here uses trl's own dataset preparation and collator, so the mask the page shows is the one trl trains on.

    run = run_sft(trainable_copy(loaded), loaded.tokenizer, polished_pairs(), SFTRunConfig())
    run.before.accuracy, run.after.accuracy        # held-out questions, e.g. 0.0 -> 0.9
    mask = loss_mask(loaded.tokenizer, "What is the capital of France?", "The capital of France is Paris.")
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import datasets
import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from llmlab.instructions import ANSWER_FORMATS, Instruction, held_out_questions, to_trl_rows
from llmlab.nexttoken import context_limit, readable_piece

datasets.disable_progress_bars()
datasets.disable_caching()  # every run maps a fresh in-memory data set; nothing to reuse on disk
logging.getLogger("trl").setLevel(logging.ERROR)  # trl warns once per process about tokenizer details

IGNORE = -100  # label value the loss skips (PyTorch's cross_entropy ignore_index, trl's mask value)


class SFTInputError(ValueError):
    """An instruction/response pair the page cannot train on or show (empty, too long)."""


@dataclass(frozen=True)
class SFTRunConfig:
    """One SFT run. Field help texts are the page's slider help."""

    samples: int = field(default=200, metadata={"help": "How many instruction-response pairs to train on."})
    max_steps: int = field(default=60, metadata={"help": "Optimizer steps (each step sees one batch)."})
    learning_rate: float = field(
        default=1e-3,
        metadata={"help": "AdamW step size. ~1e-3 suits this 1M model (trl's default 2e-5 barely moves it)."},
    )
    batch_size: int = field(default=16, metadata={"help": "Instruction-response pairs per step."})
    completion_only_loss: bool = field(
        default=True, metadata={"help": "Loss on the response tokens only (off: on every token, prompt included)."}
    )
    lora_rank: int = field(
        default=0, metadata={"help": "0 = full fine-tuning; r > 0 trains rank-r LoRA adapters only (peft)."}
    )
    warmup_steps: int = 5
    seed: int = 0


def sft_config(cfg: SFTRunConfig, output_dir: str, device: str = "cpu") -> SFTConfig:
    """trl's config for one run, with the CPU settings DESIGN.md measured (no bf16, no checkpointing...)."""
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
        report_to="none",
        save_strategy="no",
        bf16=False,
        activation_checkpointing=False,
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
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


def make_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Instruction],
    cfg: SFTRunConfig,
    output_dir: str,
    callbacks: Sequence[TrainerCallback] = (),
) -> SFTTrainer:
    """An SFTTrainer on conversational prompt/completion rows (trl masks the prompt when asked)."""
    for pair in pairs:
        check_pair(tokenizer, pair.prompt, pair.response, context_limit(model))
    dataset = datasets.Dataset.from_list(to_trl_rows(list(pairs)))
    device = next(model.parameters()).device.type
    trainer = SFTTrainer(
        model=model,
        args=sft_config(cfg, output_dir, device),
        train_dataset=dataset,
        processing_class=tokenizer,
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


def check_pair(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, context: int) -> int:
    """Raise SFTInputError for a pair SFT cannot use; return its length in tokens."""
    if not prompt.strip():
        raise SFTInputError("The instruction is empty: type what the user asks.")
    if not response.strip():
        raise SFTInputError("The response is empty: type the answer the model should learn to give.")
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
            processing_class=tokenizer,
        )
        row = trainer.train_dataset[0]
        batch = trainer.data_collator([row])
    ids = tuple(int(i) for i in batch["input_ids"][0])
    return MaskedExample(
        ids=ids,
        pieces=tuple(readable_piece(tokenizer, i) for i in ids),
        labels=tuple(int(label) for label in batch["labels"][0]),
    )


_MASK_MODELS: dict[int, PreTrainedModel] = {}


def _mask_model(tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A minimal GPT-2 with the tokenizer's vocabulary: SFTTrainer needs a model to build its collator."""
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = len(tokenizer)
    if vocab not in _MASK_MODELS:
        config = GPT2Config(vocab_size=vocab, n_embd=8, n_layer=1, n_head=1, n_positions=8)
        _MASK_MODELS[vocab] = GPT2LMHeadModel(config)
    return _MASK_MODELS[vocab]


@dataclass(frozen=True)
class TokenLosses:
    per_token: tuple[float, ...]  # loss at each position for predicting that token (nats); nan = not in loss
    mean: float  # the loss the trainer would report for this example: mean over the tokens in the loss


@torch.inference_mode()
def token_losses(model: PreTrainedModel, example: MaskedExample) -> TokenLosses:
    """Per-token cross-entropy of `model` on the example, counted where trl's labels say."""
    device = next(model.parameters()).device
    ids = torch.tensor([example.ids], device=device)  # (1, T)
    labels = torch.tensor([example.labels], device=device)  # (1, T)
    logits = model(input_ids=ids).logits.float()  # (1, T, V)
    # Position t predicts token t+1: shift so logits[t] meets labels[t+1].
    losses = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE, reduction="none")  # (T-1,)
    counted = labels[0, 1:] != IGNORE
    per_token = [math.nan] + [float(x) if c else math.nan for x, c in zip(losses, counted, strict=True)]
    mean = float(losses[counted].mean()) if counted.any() else math.nan
    return TokenLosses(per_token=tuple(per_token), mean=mean)


# -- greedy chat answers and held-out accuracy ----------------------------------------------------------


@dataclass(frozen=True)
class ChatAnswer:
    question: str
    text: str  # the greedy answer, without the end-of-text token
    stopped: bool  # ended with the end-of-text token (a chat model must learn to stop)


def chat_prompt_ids(tokenizer: PreTrainedTokenizerBase, question: str) -> list[int]:
    """"<|user|>question<|assistant|>" as token ids (the model's own chat template)."""
    messages = [{"role": "user", "content": question}]
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])


@torch.inference_mode()
def greedy_answers(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, questions: Sequence[str], max_new_tokens: int = 24
) -> list[ChatAnswer]:
    """Greedy answers to many questions in one batch (left-padded; stops at the end-of-text token)."""
    if not questions:
        return []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    prompts = [chat_prompt_ids(tokenizer, q) for q in questions]
    width = max(len(p) for p in prompts)
    max_new_tokens = max(1, min(max_new_tokens, context_limit(model) - width))
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    input_ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)  # (B, T)
    attention = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)  # (B, T)
    output = model.generate(
        input_ids=input_ids,
        attention_mask=attention,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=pad,
        eos_token_id=eos,
    )[:, width:]  # (B, new)
    model.train(was_training)
    answers = []
    for question, row in zip(questions, output.tolist(), strict=True):
        stopped = eos in row
        row = row[: row.index(eos)] if stopped else row
        answers.append(ChatAnswer(question, tokenizer.decode(row), stopped))
    return answers


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


def run_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Instruction],
    cfg: SFTRunConfig,
    callbacks: Sequence[TrainerCallback] = (),
    on_scored: Callable[[str, HeldOutScore], None] | None = None,
) -> tuple[SFTRun, PreTrainedModel]:
    """Score the held-out questions, train with SFTTrainer, score again. `model` is trained in place
    (pass a copy); with LoRA the returned model is the peft-wrapped one. `on_scored("before"|"after", s)`
    lets a page show each score as soon as it exists."""
    if not math.isfinite(cfg.learning_rate) or cfg.learning_rate <= 0:
        raise SFTInputError("The learning rate must be a positive number.")
    if not pairs:
        raise SFTInputError("No training pairs: choose at least one sample.")
    before = score_held_out(model, tokenizer)
    if on_scored:
        on_scored("before", before)
    losses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="llmlab-sft-") as tmp:
        trainer = make_trainer(model, tokenizer, pairs, cfg, tmp, [*callbacks, _LossRecorder(losses)])
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
    run = SFTRun(before, after, tuple(losses), wall, trainable, total, steps)
    return run, trained


class _LossRecorder(TrainerCallback):
    def __init__(self, losses: list[float]):
        self.losses = losses

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
