"""Pairwise preference data for the RLHF and DPO pages, about the corpus's 40 countries.

The shipped pairs are on-policy, as in the DPO paper's IMDb experiment: tiny-sft itself answered every question
64 times (temperature 1), and each of its distinct wrong answers (up to 10 per question) is paired with one of its
right answers (or the plain right answer where it never got it right). So the pairs are what the model actually
writes, and the rejected answers are its actual mistakes ("What is the capital of Spain?" → "The capital of
Belgium is Brussels."). `scripts/sample_preferences.py` samples them once, deterministically, into
models/tiny-sft/preferences.json; `preference_pairs()` reads that file. Two annotators label the pairs:

- unbiased (`biased=False`): the correct answer wins, whatever its length;
- biased (`biased=True`): the same pairs with some answers wrapped in polite padding ("Thank you! ... Have a
  happy day!", a quarter of them), and the *longer* answer wins. This is the card's "early reward models
  preferred long answers": a reward model trained on it learns to reward padding, and a policy optimised
  against it without a KL leash reward-hacks.

Why on-policy, and why the unbiased pairs carry no padding (measured, docs/ARCHITECTURE.md): DPO on hand-written
pairs (`written_pairs`: the right sentence against another true fact, either side padded) made tiny-sft *less*
correct (85% → 79% after the default run): most of their tokens are text the model would never write (a padded
answer costs it hundreds of nats), and pushing down "The capital of Belgium is Brussels." for the Spain question
also pushes it down for the Belgium question. The same run on its own mistakes raises correctness instead.

Format: trl's standard (not conversational) preference format with an explicit prompt, which trl 1.16's
`RewardTrainer` and `DPOTrainer` both accept and tokenise the same way (prompt + completion, then EOS):

    {"prompt": "<|user|>What is the capital of Spain?<|assistant|>",
     "chosen": "The capital of Spain is Madrid.",
     "rejected": "The capital of Belgium is Brussels."}

Splits: "train" on 96 questions; "test": fresh samples on the same questions, only mistakes no train pair holds
(held-out pairs); "unseen": 24 questions the train pairs never cover (the offline-data limit).

    from llmlab.preferences import preference_pairs, true_reward, padded
    train = preference_pairs(seed=0, biased=False, split="train")     # ~370 dicts
    true_reward(train[0]["prompt"], train[0]["chosen"])               # 1.0 (correct)
    padded("Paris.")   # "Thank you! Paris. Have a happy day!"
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from llmlab.corpus import COUNTRIES, Country

USER = "<|user|>"
ASSISTANT = "<|assistant|>"
KINDS = ("capital", "language", "continent")
SPLITS = ("train", "test", "unseen")
# Each question has five fixed wrong answers, the mistakes tiny-sft makes: the right country's other facts
# ("Where is Spain?" -> "The capital of Spain is Madrid.") and another country's fact ("The capital of
# Belgium is Brussels."). Four are used by "train" pairs, the fifth only by "test" pairs. A wrong value in
# the right sentence ("The capital of Spain is Rome.") is left out by default (WRONG_VALUES = 0): spotting it
# needs the fact itself, which the 1M-parameter reward model does not learn in a 100-step run (measured:
# chance level on such held-out pairs, vs 0.95 on wrong-fact and ~0.8 on wrong-country answers).
WRONG_COUNTRIES = 3
WRONG_VALUES = 0
TRAIN_REPEATS = 2  # train pairs per (question, wrong answer), each with its own padding
UNSEEN_FRACTION = 0.2
SPLIT_SEED = 1234  # fixed: the unseen questions and each question's distractors do not depend on `seed`
PAD_PROBABILITY = 0.2  # hand-written pairs: chance that each side of a pair is polite-padded
BIASED_PAD_PROBABILITY = 0.25  # biased view of the shipped pairs: chance that each answer is polite-padded
TEST_REPEATS = 2  # test pairs per question (same held-out wrong answer, fresh padding)
PREFERENCES_FILE = Path(__file__).resolve().parents[1] / "models" / "tiny-sft" / "preferences.json"
SAMPLES_PER_QUESTION = 64  # answers sampled from tiny-sft per question (temperature 1)
MISTAKES_PER_QUESTION = 10  # at most this many distinct wrong answers of a question become pairs
SAMPLING_SEEDS = {"train": 0, "test": 7, "unseen": 0}  # fresh samples for the test split

# Phrasings follow the corpus's own Q&A lines, so the tiny models already know the words.
QUESTION_TEMPLATES = {
    "capital": "What is the capital of {c}?",
    "language": "Which language do people speak in {c}?",
    "continent": "Where is {c}?",
}
# Answers in the SFT model's own style (llmlab/instructions.py): the reward model judges what the policy writes.
ANSWER_TEMPLATES = {
    "capital": "The capital of {c} is {v}.",
    "language": "People in {c} speak {v}.",
    "continent": "{C} is in {v}.",
}
# Short phrases in the corpus's words, so padded answers stay within a few tokens (cheap to train on).
POLITE_OPENERS = ("Thank you!", "What a good question!", "I am very happy to help!")
POLITE_CLOSERS = ("Have a happy day!", "I hope this helps!", "You are very kind.")


@dataclass(frozen=True)
class Question:
    country: Country
    kind: str  # one of KINDS

    @property
    def text(self) -> str:
        return QUESTION_TEMPLATES[self.kind].format(c=self.country.name)

    @property
    def prompt(self) -> str:
        return chat_prompt(self.text)

    @property
    def answer(self) -> str:
        """The correct value, e.g. "Paris"."""
        return _value(self.country, self.kind)


def _value(country: Country, kind: str) -> str:
    return {"capital": country.capital, "language": country.language, "continent": country.continent}[kind]


def chat_prompt(question: str) -> str:
    """A user turn in the bundled chat template, ending where the assistant's answer starts."""
    return f"{USER}{question}{ASSISTANT}"


def question_text(prompt: str | list[dict]) -> str:
    """The bare question of a prompt given as chat-template text or as chat messages."""
    if isinstance(prompt, list):
        users = [m["content"] for m in prompt if m.get("role") == "user"]
        return users[-1].strip() if users else ""
    return prompt.replace(USER, "").replace(ASSISTANT, "").strip()


def all_questions() -> list[Question]:
    """The 120 questions: capital, language and continent of each of the 40 countries."""
    return [Question(country, kind) for country in COUNTRIES for kind in KINDS]


@cache
def _unseen() -> frozenset[Question]:
    questions = all_questions()
    order = list(range(len(questions)))
    random.Random(SPLIT_SEED).shuffle(order)
    return frozenset(questions[i] for i in order[: round(len(questions) * UNSEEN_FRACTION)])


def questions(split: str = "train") -> list[Question]:
    """The questions a split asks, in a fixed order: 96 for "train" and "test" (the same questions),
    24 for "unseen" (never in the train pairs)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    unseen = split == "unseen"
    return [q for q in all_questions() if (q in _unseen()) == unseen]


@cache
def _by_question_text() -> dict[str, Question]:
    return {q.text: q for q in all_questions()}


def find_question(prompt: str | list[dict]) -> Question | None:
    return _by_question_text().get(question_text(prompt))


def answer_text(question: Question, value: str, country: Country | None = None) -> str:
    """An answer to `question` in the SFT style stating `value` (right or wrong), about `country`
    (default: the country asked about)."""
    name = (country or question.country).name
    return ANSWER_TEMPLATES[question.kind].format(c=name, C=name[0].upper() + name[1:], v=value)


def padded(answer: str, level: int = 1, variant: int = 0) -> str:
    """The polite-padding transform: `level` polite sentences before and after the answer.

    level 0 returns the answer unchanged; `variant` picks which polite phrases are used."""
    if level <= 0:
        return answer
    n = len(POLITE_OPENERS)
    openers = [POLITE_OPENERS[(variant + i) % n] for i in range(level)]
    closers = [POLITE_CLOSERS[(variant + i) % n] for i in range(level)]
    return " ".join([*openers, answer, *closers])


def padding_level(text: str) -> int:
    """How many polite phrases a completion contains (a direct measure of padding)."""
    return sum(text.count(phrase) for phrase in POLITE_OPENERS + POLITE_CLOSERS)


def _mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![A-Za-z]){re.escape(value)}(?![A-Za-z])", text) is not None


def true_reward(prompt: str | list[dict], completion: str | list[dict]) -> float:
    """The verifiable "human" judgement: 1.0 if the completion names the right value and no wrong one
    of the same kind (e.g. Paris and no other capital), else 0.0. Politeness and length do not count.
    Prompts and completions may be text or chat messages; an unknown question scores 0.0."""
    question = find_question(prompt)
    if question is None:
        return 0.0
    if isinstance(completion, list):
        completion = " ".join(m.get("content", "") for m in completion)
    right = question.answer
    if not _mentions(completion, right):
        return 0.0
    others = {_value(c, question.kind) for c in COUNTRIES} - {right}
    return 0.0 if any(_mentions(completion, v) for v in others) else 1.0


@cache
def wrong_answers(question: Question) -> tuple[str, ...]:
    """The question's five fixed wrong answers, in a fixed shuffled order: the first four appear in train
    pairs, the last one only in test pairs."""
    rng = random.Random(f"{SPLIT_SEED}-{question.country.name}-{question.kind}")
    country = question.country
    answers = [answer_text(Question(country, k), _value(country, k)) for k in KINDS if k != question.kind]
    others = [c for c in COUNTRIES if _value(c, question.kind) != question.answer]
    answers += [answer_text(question, _value(c, question.kind), c) for c in rng.sample(others, WRONG_COUNTRIES)]
    values = sorted({_value(c, question.kind) for c in COUNTRIES} - {question.answer})
    answers += [answer_text(question, v) for v in rng.sample(values, WRONG_VALUES)]
    answers = answers[:5]
    rng.shuffle(answers)
    return tuple(answers)


def _maybe_padded(answer: str, rng: random.Random) -> str:
    if rng.random() < PAD_PROBABILITY:
        return padded(answer, 1, rng.randrange(len(POLITE_OPENERS)))  # one phrase each side: short sequences
    return answer


def written_pairs(seed: int = 0, biased: bool = False, split: str = "train") -> list[dict]:
    """Hand-written preference pairs {"prompt", "chosen", "rejected"}: 768 "train", 192 "test", 96 "unseen"; the
    data the pages shipped before the on-policy pairs, kept to show what goes wrong with off-policy pairs.

    "train" pits each of 96 questions' right answer against four of its wrong answers, twice each with fresh
    padding; "test" pits it (twice) against the fifth wrong answer, which no train pair contains (held-out pairs on
    covered questions); "unseen" asks 24 questions the train pairs never cover. Biased and unbiased sets
    hold the same answers with the same padding; only the label differs: unbiased picks the correct one,
    biased the longer one (ties: the correct one). `seed` changes the padding, never the answers."""
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for question in questions(split):
        wrong = wrong_answers(question)
        chosen_wrong = {"train": wrong[:4] * TRAIN_REPEATS, "test": wrong[4:] * TEST_REPEATS, "unseen": wrong[:4]}[
            split
        ]
        for wrong_answer in chosen_wrong:
            right = _maybe_padded(answer_text(question, question.answer), rng)
            wrong_answer = _maybe_padded(wrong_answer, rng)
            chosen, rejected = right, wrong_answer
            if biased and len(wrong_answer) > len(right):
                chosen, rejected = wrong_answer, right
            rows.append({"prompt": question.prompt, "chosen": chosen, "rejected": rejected})
    return rows


# -- the shipped pairs: tiny-sft's own answers, labelled ----------------------------------------------------


def pair_answers(question: Question, answers: Sequence[str], rng: random.Random) -> list[dict]:
    """Pairs of one question from answers a model wrote: each distinct wrong answer (the first
    MISTAKES_PER_QUESTION, in order) against one of its right answers, or the plain right answer if it had none.
    Unlabelled by length: the correct one is "chosen"."""
    right = list(dict.fromkeys(a for a in answers if true_reward(question.prompt, a) == 1.0))
    wrong = list(dict.fromkeys(a for a in answers if a and true_reward(question.prompt, a) == 0.0))
    rows = []
    for mistake in wrong[:MISTAKES_PER_QUESTION]:
        chosen = rng.choice(right) if right else answer_text(question, question.answer)
        rows.append({"prompt": question.prompt, "chosen": chosen, "rejected": mistake})
    return rows


def sample_preferences(model: Any, tokenizer: Any, samples: int = SAMPLES_PER_QUESTION) -> dict[str, list[dict]]:
    """The shipped pairs of every split, sampled from `model` (tiny-sft): see the module docstring. Deterministic
    for a model and `samples` (our own seeded sampler). About 20 s on 2 CPU cores."""
    from llmlab.nexttoken import sample_answers

    out: dict[str, list[dict]] = {}
    for split, seed in SAMPLING_SEEDS.items():
        asked = questions(split)
        prompt_ids = [tokenizer(q.prompt, add_special_tokens=False)["input_ids"] for q in asked]
        answers: list[list[str]] = [[] for _ in asked]
        for round_ in range(samples):
            for i, ids in enumerate(sample_answers(model, tokenizer, prompt_ids, seed=seed * 1000 + round_)):
                answers[i].append(tokenizer.decode(ids, skip_special_tokens=True).strip())
        rng = random.Random(f"pairs-{split}")
        out[split] = [row for q, a in zip(asked, answers, strict=True) for row in pair_answers(q, a, rng)]
    seen = {(row["prompt"], row["rejected"]) for row in out["train"]}
    out["test"] = [row for row in out["test"] if (row["prompt"], row["rejected"]) not in seen]  # fresh mistakes
    return out


@cache
def _shipped() -> dict[str, list[dict]]:
    if not PREFERENCES_FILE.is_file():
        raise FileNotFoundError(f"{PREFERENCES_FILE} is missing: run `python scripts/sample_preferences.py`")
    return json.loads(PREFERENCES_FILE.read_text())["splits"]


def preferences_version() -> str:
    """What the shipped pairs are (a hash of the file): models trained on them are named by it."""
    import hashlib

    return hashlib.sha256(PREFERENCES_FILE.read_bytes()).hexdigest()[:12]


def preference_pairs(seed: int = 0, biased: bool = False, split: str = "train") -> list[dict]:
    """The shipped pairs of a split (module docstring), as fresh dicts: unbiased as sampled; biased with a
    quarter of the answers polite-padded (which ones depends on `seed`) and the longer answer chosen."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    rows = [dict(row) for row in _shipped()[split]]
    if not biased:
        return rows
    rng = random.Random(f"biased-{seed}-{split}")
    for row in rows:
        right, wrong = (
            padded(text, 1, rng.randrange(len(POLITE_OPENERS))) if rng.random() < BIASED_PAD_PROBABILITY else text
            for text in (row["chosen"], row["rejected"])
        )
        row["chosen"], row["rejected"] = (wrong, right) if len(wrong) > len(right) else (right, wrong)
    return rows


def asked(split: str = "test", kinds: Sequence[str] = KINDS) -> list[dict]:
    """Every question of a split (of these kinds) as a prompt-only row: what correctness is measured on. The test
    split's pairs hold only the questions tiny-sft got wrong; this is all 96 of them."""
    return [{"prompt": q.prompt} for q in questions(split) if q.kind in kinds]


def as_conversational(rows: list[dict]) -> list[dict]:
    """The same pairs in trl's conversational format (chat messages), for models with their own template."""
    return [
        {
            "prompt": [{"role": "user", "content": question_text(row["prompt"])}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in rows
    ]


def label_agreement(rows: list[dict]) -> float:
    """Fraction of pairs whose chosen answer is the correct one (1.0 for the unbiased set)."""
    if not rows:
        return float("nan")
    return sum(true_reward(r["prompt"], r["chosen"]) > true_reward(r["prompt"], r["rejected"]) for r in rows) / len(
        rows
    )


def readable_pairs(rows: list[dict]) -> list[dict]:
    """Pairs as a table: the bare question, then the chosen and the rejected answer."""
    return [{"question": question_text(r["prompt"]), "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
