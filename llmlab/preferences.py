"""Pairwise preference data for the RLHF and DPO pages, generated from the corpus's 40 countries.

Each pair answers one question ("What is the capital of France?") twice: once right, once wrong (another
country's capital), in one of several phrasings, either side sometimes wrapped in polite padding
("Thank you for your question! ... I hope this helps!"). Two annotators label the pairs:

- unbiased (`biased=False`): the correct answer wins, whatever its length or politeness;
- biased (`biased=True`): the *longer* answer wins (padding makes an answer longer), correctness only breaks
  ties. This is the card's "early reward models preferred long answers": a reward model trained on it learns
  to reward padding, and a policy optimised against it without a KL leash reward-hacks.

Format: trl's standard (not conversational) preference format with an explicit prompt, which trl 1.16's
`RewardTrainer` and `DPOTrainer` both accept and tokenise the same way (prompt + completion, then EOS):

    {"prompt": "<|user|>What is the capital of France?<|assistant|>",
     "chosen": "The capital of France is Paris.",
     "rejected": "Rome is the capital of France."}

The prompt is the bundled models' chat template already applied (`chat_prompt`), so the text the trainers
see is exactly "<|user|>…<|assistant|>answer<|endoftext|>"; completions carry no EOS (the trainers add it).
`as_conversational(rows)` gives the same pairs as chat messages for models with another chat template.

Train and test pairs come from disjoint questions (a fixed 20% of the 120 questions is held out whatever
the seed), so held-out accuracy measures generalisation to unseen questions.

    from llmlab.preferences import preference_pairs, true_reward, padded
    train = preference_pairs(seed=0, biased=False, split="train")     # 384 dicts
    true_reward(train[0]["prompt"], train[0]["chosen"])               # 1.0 (correct)
    padded("Paris.")   # "Thank you for your question! Paris. I hope this helps!"
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

from llmlab.corpus import COUNTRIES, Country

USER = "<|user|>"
ASSISTANT = "<|assistant|>"
KINDS = ("capital", "language", "continent")
SPLITS = ("train", "test")
PAIRS_PER_QUESTION = 4
TEST_FRACTION = 0.2
SPLIT_SEED = 1234  # fixed: train and test questions stay disjoint whatever `seed` a caller passes
PAD_PROBABILITY = 0.35  # chance that each side of a pair is polite-padded

# Phrasings follow the corpus's own Q&A lines, so the tiny models already know the words.
QUESTION_TEMPLATES = {
    "capital": "What is the capital of {c}?",
    "language": "Which language do people speak in {c}?",
    "continent": "Where is {c}?",
}
ANSWER_TEMPLATES = {
    "capital": ("The capital of {c} is {v}.", "{v} is the capital of {c}.", "{v}."),
    "language": ("People in {c} speak {v}.", "The main language of {c} is {v}.", "{v}."),
    "continent": ("{C} is in {v}.", "{C} is a country in {v}.", "In {v}."),
}
POLITE_OPENERS = (
    "Thank you for your question!",
    "What a great question!",
    "I am very happy to help you with this.",
)
POLITE_CLOSERS = (
    "I hope this helps!",
    "Have a wonderful day!",
    "Please ask me if you have more questions.",
)


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
def _split_of() -> dict[Question, str]:
    questions = all_questions()
    order = list(range(len(questions)))
    random.Random(SPLIT_SEED).shuffle(order)
    n_test = round(len(questions) * TEST_FRACTION)
    test = set(order[:n_test])
    return {q: ("test" if i in test else "train") for i, q in enumerate(questions)}


def questions(split: str = "train") -> list[Question]:
    """The questions of one split (96 train, 24 test), in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return [q for q in all_questions() if _split_of()[q] == split]


@cache
def _by_question_text() -> dict[str, Question]:
    return {q.text: q for q in all_questions()}


def find_question(prompt: str | list[dict]) -> Question | None:
    return _by_question_text().get(question_text(prompt))


def answer_text(question: Question, value: str, template: int = 0) -> str:
    """One phrasing of an answer (right or wrong `value`) to `question`."""
    templates = ANSWER_TEMPLATES[question.kind]
    name = question.country.name
    return templates[template % len(templates)].format(c=name, C=name[0].upper() + name[1:], v=value)


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


def _wrong_value(question: Question, rng: random.Random) -> str:
    values = sorted({_value(c, question.kind) for c in COUNTRIES} - {question.answer})
    return rng.choice(values)


def preference_pairs(seed: int = 0, biased: bool = False, split: str = "train") -> list[dict]:
    """Preference pairs {"prompt", "chosen", "rejected"} for one split (384 train, 96 test).

    Both sets hold the same (right, wrong) answers with the same padding; only the label differs:
    unbiased picks the correct one, biased the longer one (ties go to the correct one)."""
    rng = random.Random(f"{seed}-{split}")
    rows = []
    for question in questions(split):
        for _ in range(PAIRS_PER_QUESTION):
            n_templates = len(ANSWER_TEMPLATES[question.kind])
            right = answer_text(question, question.answer, rng.randrange(n_templates))
            wrong = answer_text(question, _wrong_value(question, rng), rng.randrange(n_templates))
            if rng.random() < PAD_PROBABILITY:
                right = padded(right, rng.randint(1, 2), rng.randrange(len(POLITE_OPENERS)))
            if rng.random() < PAD_PROBABILITY:
                wrong = padded(wrong, rng.randint(1, 2), rng.randrange(len(POLITE_OPENERS)))
            chosen, rejected = right, wrong
            if biased and len(wrong) > len(right):
                chosen, rejected = wrong, right
            rows.append({"prompt": question.prompt, "chosen": chosen, "rejected": rejected})
    return rows


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
