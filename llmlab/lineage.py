"""The lineage on one screen: one question answered by every stage of the bundled models (tiny-base → tiny-sft →
tiny-rlhf and tiny-dpo), and each stage's next-token distribution at the same point of the answer.

Every model gets the same input text, the question in the bundled chat format. tiny-base never saw that format
(it continues text); SFT taught it; RLHF and DPO moved tiny-sft toward the answers the preference pairs reward.
The distributions are read along one shared answer, tiny-sft's greedy one: position t is the distribution of the
token after the prompt and that answer's first t tokens, so all four models are compared in the same context
(one forward pass per model gives every position).

    view = compare(models, "What is the capital of France?")
    view.answers["tiny-dpo"], view.distribution(view.default_position)   # text; (tokens, {model: probs})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from llmlab.modeling import LoadedModel
from llmlab.nexttoken import PromptError, context_limit, encode_prompt, greedy_continuation, readable_piece
from llmlab.preferences import chat_prompt, find_question, true_reward

LINEAGE = ("tiny-base", "tiny-sft", "tiny-rlhf", "tiny-dpo")  # in training order; missing ones are skipped
REFERENCE = "tiny-sft"  # whose greedy answer the distributions are read along
# Where the stages differ, measured on the bundled models: tiny-sft answers the first three about another country
# (Belgium, Vietnam), tiny-dpo gets them right; on "Where is Spain?" it gets worse; the rest all stages agree on.
EXAMPLES = (
    "What is the capital of Spain?",
    "What is the capital of Indonesia?",
    "Which language do people speak in Spain?",
    "Where is Spain?",
    "What is the capital of France?",
    "Tell me a story about a cat.",
)
MAX_ANSWER_TOKENS = 24
MAX_QUESTION_CHARS = 300  # a longer question is cut (the context is 128 tokens, the answer needs room)
SHOWN_TOKENS = 4  # per model, its most likely tokens join the chart


@dataclass(frozen=True)
class LineageView:
    question: str
    input_text: str  # exactly what every model reads
    names: tuple[str, ...]
    answers: dict[str, str]  # greedy answer per model
    correct: dict[str, bool | None]  # None: not a fact question the project can check
    path_pieces: tuple[str, ...]  # the shared answer's tokens (tiny-sft's greedy answer), readable
    probs: dict[str, np.ndarray]  # model -> (len(path_pieces) + 1, V): distribution after the prompt + t tokens
    token_pieces: tuple[str, ...]  # readable text of every vocabulary id
    truncated: bool  # the question was cut to fit

    @property
    def positions(self) -> int:
        return len(self.path_pieces) + 1

    def position_label(self, t: int) -> str:
        """Where position t is: after the prompt and the shared answer's first t tokens."""
        return "".join(self.path_pieces[:t]) + " ▌"

    @property
    def default_position(self) -> int:
        """Where the stages after SFT first part from tiny-sft (another most likely token), so the chart opens on
        the step that differs; if they never do, where their distributions differ most (total variation); 0
        (the answer's first token) when there is nothing to compare."""
        others = [n for n in self.names if n not in ("tiny-base", REFERENCE)]
        if REFERENCE not in self.probs or not others:
            return 0
        ref = self.probs[REFERENCE]
        parted = np.any([self.probs[n].argmax(axis=1) != ref.argmax(axis=1) for n in others], axis=0)
        if parted.any():
            return int(parted.argmax())
        tv = np.max([0.5 * np.abs(self.probs[n] - ref).sum(axis=1) for n in others], axis=0)
        return int(tv.argmax())

    def distribution(self, t: int) -> tuple[list[str], dict[str, list[float]]]:
        """The chart at position t: the union of each model's SHOWN_TOKENS most likely tokens (ordered by their
        best probability), and each model's probability of each."""
        ids: dict[int, float] = {}
        for name in self.names:
            p = self.probs[name][t]
            for i in np.argsort(-p, kind="stable")[:SHOWN_TOKENS]:
                ids[int(i)] = max(ids.get(int(i), 0.0), float(p[i]))
        order = sorted(ids, key=lambda i: -ids[i])
        return [self.token_pieces[i] for i in order], {
            n: [float(self.probs[n][t][i]) for i in order] for n in self.names
        }


@torch.inference_mode()
def _distributions(model: LoadedModel, prompt_ids: list[int], path: list[int]) -> np.ndarray:
    """(len(path) + 1, V) next-token probabilities along prompt + path, from one forward pass."""
    ids = torch.tensor([prompt_ids + path], device=model.model.device)
    logits = model.model(input_ids=ids).logits[0, len(prompt_ids) - 1 :].float().cpu()
    return torch.softmax(logits, dim=-1).double().numpy()


def compare(models: Mapping[str, LoadedModel], question: str) -> LineageView:
    """Every model's greedy answer to `question` and its distributions along tiny-sft's answer (or, without
    tiny-sft, the first model's). Raises PromptError for an empty question. Models are only read."""
    question = " ".join(question.split())
    if not question:
        raise PromptError("Type a question (or pick an example) for the models to answer.")
    truncated = len(question) > MAX_QUESTION_CHARS
    question = question[:MAX_QUESTION_CHARS]
    names = tuple(n for n in LINEAGE if n in models) + tuple(n for n in models if n not in LINEAGE)
    reference = models.get(REFERENCE) or models[names[0]]
    tokenizer = reference.tokenizer
    text = chat_prompt(question)
    limit = context_limit(reference.model) - MAX_ANSWER_TOKENS
    prompt = encode_prompt(tokenizer, text, limit)
    answers = {n: greedy_continuation(models[n].model, tokenizer, text, MAX_ANSWER_TOKENS) for n in names}
    path = tokenizer(answers[REFERENCE if REFERENCE in models else names[0]], add_special_tokens=False)["input_ids"]
    fact = find_question(text) is not None
    return LineageView(
        question=question,
        input_text=text,
        names=names,
        answers=answers,
        correct={n: (true_reward(text, a) > 0) if fact else None for n, a in answers.items()},
        path_pieces=tuple(readable_piece(tokenizer, i) for i in path),
        probs={n: _distributions(models[n], list(prompt.ids), path) for n in names},
        token_pieces=tuple(readable_piece(tokenizer, i) for i in range(len(tokenizer))),
        truncated=truncated or prompt.truncated > 0,
    )
