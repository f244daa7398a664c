"""The instruction data set: "binder of model answers" built from the corpus's own facts.

Every pair is generated from `llmlab/corpus.py` (seeded, deterministic), so the app ships no data file and
the bundled model already *knows* every fact it is asked about: SFT only has to teach it the chat format.
Four flavours, one per experiment on the SFT page:

- `polished_pairs()`  the clean set: capital / language / continent questions about the 30 training
  countries in several phrasings, one consistent answer style each, plus sums, tiny stories and code.
- `held_out_questions()`  canonical questions about 10 countries that never appear in any training set:
  before/after accuracy measures whether the *format* generalises (the facts come from pre-training).
- `mediocre_pairs()`  "many mediocre" samples: the same questions answered in an inconsistent format,
  with filler phrases, bare words, lower case, missing periods and a few wrong facts.
- `wrong_fact_pairs()`  the polished set with the capitals of a few countries confidently wrong.

`examples_by_kind()` picks one polished pair of each kind (the SFT page's loss-mask examples).

Pairs convert to trl's conversational prompt/completion rows with `to_trl_rows()`.

    pairs = polished_pairs()                  # ~350 Instruction(prompt, response, kind, country, answer)
    rows = to_trl_rows(pairs)                 # [{"prompt": [{"role": "user", ...}], "completion": [...]}]
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from llmlab.corpus import ANIMALS, COUNTRIES, OPS, Country, story

# Held out of every training set; spread over the list so each continent is represented.
HELD_OUT_COUNTRIES: tuple[Country, ...] = tuple(COUNTRIES[i] for i in range(3, len(COUNTRIES), 4))
TRAIN_COUNTRIES: tuple[Country, ...] = tuple(c for c in COUNTRIES if c not in HELD_OUT_COUNTRIES)

# (question templates, the one answer template) per fact kind; the first question is the canonical probe.
FACT_TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "capital": (
        (
            "What is the capital of {c}?",
            "Which city is the capital of {c}?",
            "Name the capital of {c}.",
            "Tell me the capital of {c}.",
        ),
        "The capital of {c} is {cap}.",
    ),
    "language": (
        ("Which language do people speak in {c}?", "What language is spoken in {c}?"),
        "People in {c} speak {lang}.",
    ),
    "continent": (
        ("Where is {c}?", "On which continent is {c}?"),
        "{C} is in {continent}.",
    ),
}
# What a well-formatted answer looks like, whatever the fact (format consistency ignores correctness).
ANSWER_FORMATS: dict[str, re.Pattern[str]] = {
    "capital": re.compile(r"The capital of [A-Za-z ]+ is [A-Z][A-Za-z ]+\."),
    "language": re.compile(r"People in [A-Za-z ]+ speak [A-Z][A-Za-z]+\."),
    "continent": re.compile(r"[A-Z][A-Za-z ]+ is in [A-Z][A-Za-z ]+\."),
}

# The "many mediocre" answer styles: right facts (mostly), inconsistent format, dataset tics. Words the
# corpus knows, so the noise is in the *style*, not in unreadable tokens.
MEDIOCRE_STYLES: dict[str, tuple[str, ...]] = {
    "capital": (
        "{cap}.",
        "It is {cap}.",
        "I think it is {cap}, but I am not sure.",
        "As an AI assistant, I can tell you that the capital of {c} is {cap}.",
        "{cap} is the capital of {c}.",
        "The capital of {c} is {cap}. {C} is in {continent}. People in {c} speak {lang}.",
        "Good question! The capital of {c} is {cap}!",
        "the capital of {c} is {cap}",
    ),
    "language": (
        "{lang}.",
        "They speak {lang}.",
        "As an AI assistant, I can tell you that people in {c} speak {lang}.",
        "People in {c} speak {lang}",
        "The main language of {c} is {lang}.",
    ),
    "continent": (
        "{continent}.",
        "It is in {continent}.",
        "As an AI assistant, I can tell you that {c} is in {continent}.",
        "{C} is a country in {continent}.",
        "in {continent}",
    ),
}
MEDIOCRE_WRONG_FACT_RATE = 0.15

# The style-not-knowledge experiment: these training countries get a confidently wrong capital
# (each takes the next one's capital, so every wrong answer is a real city the model knows).
WRONG_FACT_COUNTRIES: tuple[str, ...] = ("France", "Japan", "Egypt", "Mexico", "Kenya")


@dataclass(frozen=True)
class Instruction:
    prompt: str  # the user's instruction
    response: str  # the assistant's answer, without the end-of-text token (the chat template adds it)
    kind: str  # "capital" | "language" | "continent" | "arithmetic" | "story" | "code"
    country: str | None = None  # fact pairs: the country asked about
    answer: str | None = None  # fact pairs: the word a correct answer contains, e.g. "Paris"


def _fields(country: Country) -> dict[str, str]:
    name = country.name
    return {
        "c": name,
        "C": name[0].upper() + name[1:],
        "cap": country.capital,
        "cap_lower": country.capital.lower(),
        "lang": country.language,
        "continent": country.continent,
    }


def _fact_answer(kind: str, country: Country) -> str:
    return {"capital": country.capital, "language": country.language, "continent": country.continent}[kind]


def fact_pairs(countries: tuple[Country, ...], all_phrasings: bool = True) -> list[Instruction]:
    """Capital, language and continent questions with the one polished answer style."""
    pairs = []
    for country in countries:
        fields = _fields(country)
        for kind, (questions, answer) in FACT_TEMPLATES.items():
            for question in questions if all_phrasings else questions[:1]:
                pairs.append(
                    Instruction(
                        prompt=question.format(**fields),
                        response=answer.format(**fields),
                        kind=kind,
                        country=country.name,
                        answer=_fact_answer(kind, country),
                    )
                )
    return pairs


def arithmetic_pair(rng: random.Random) -> Instruction:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        return Instruction(f"What is {a} + {b}?", f"{a} + {b} = {a + b}.", "arithmetic", answer=str(a + b))
    a, b = max(a, b), min(a, b)
    return Instruction(f"What is {a} - {b}?", f"{a} - {b} = {a - b}.", "arithmetic", answer=str(a - b))


def story_pair(rng: random.Random) -> Instruction:
    text = story(rng)
    animal = next(a for a in ANIMALS if f"little {a} " in text)
    return Instruction(f"Tell me a short story about a {animal}.", text, "story")


def code_pair(rng: random.Random) -> Instruction:
    x, y = rng.randint(1, 9), rng.randint(1, 9)
    name, op = rng.choice(OPS)
    result = {"+": x + y, "-": x - y, "*": x * y}[op]
    code = f"x = {x}\ny = {y}\nz = x {op} y\nprint(z)\n# prints {result}"
    return Instruction(f"Write Python code to {name} {x} and {y}.", code, "code", answer=str(result))


def polished_pairs(seed: int = 0, n_arithmetic: int = 60, n_stories: int = 20, n_code: int = 20) -> list[Instruction]:
    """The clean training set (~340 pairs), shuffled; no held-out country appears in it."""
    rng = random.Random(seed)
    pairs = fact_pairs(TRAIN_COUNTRIES)
    pairs += [arithmetic_pair(rng) for _ in range(n_arithmetic)]
    pairs += [story_pair(rng) for _ in range(n_stories)]
    pairs += [code_pair(rng) for _ in range(n_code)]
    rng.shuffle(pairs)
    return pairs


def examples_by_kind(seed: int = 0) -> dict[str, Instruction]:
    """The first polished pair of each kind, labelled "kind: instruction" (one example of every kind of pair)."""
    examples: dict[str, Instruction] = {}
    for pair in polished_pairs(seed):
        if pair.kind not in {p.kind for p in examples.values()}:
            examples[f"{pair.kind}: {pair.prompt}"] = pair
    return examples


def held_out_questions() -> list[Instruction]:
    """The canonical question of each fact kind for the 10 held-out countries (30 questions)."""
    return fact_pairs(HELD_OUT_COUNTRIES, all_phrasings=False)


def mediocre_pairs(n: int = 1000, seed: int = 0) -> list[Instruction]:
    """Many mediocre samples: training-country questions answered in a mix of styles, some facts wrong."""
    rng = random.Random(seed + 1)
    pairs = []
    for _ in range(n):
        country = rng.choice(TRAIN_COUNTRIES)
        kind = rng.choice(("capital", "capital", "language", "continent"))
        fields = _fields(country)
        if rng.random() < MEDIOCRE_WRONG_FACT_RATE:  # a careless annotator: another country's fact
            other = rng.choice([c for c in TRAIN_COUNTRIES if _fact_answer(kind, c) != _fact_answer(kind, country)])
            fields = {**_fields(other), "c": fields["c"], "C": fields["C"]}
        question = rng.choice(FACT_TEMPLATES[kind][0]).format(**_fields(country))
        if rng.random() < 0.3:
            question = question[0].lower() + question[1:]
        response = rng.choice(MEDIOCRE_STYLES[kind]).format(**fields)
        pairs.append(Instruction(question, response, kind, country.name, _fact_answer(kind, country)))
    return pairs


def wrong_fact_pairs(seed: int = 0) -> tuple[list[Instruction], dict[str, str]]:
    """The polished set where each country in WRONG_FACT_COUNTRIES is given the next one's capital.

    Returns (pairs, {country: wrong capital})."""
    by_name = {c.name: c for c in COUNTRIES}
    names = WRONG_FACT_COUNTRIES
    wrong = {name: by_name[names[(i + 1) % len(names)]].capital for i, name in enumerate(names)}
    pairs = []
    for pair in polished_pairs(seed):
        if pair.kind == "capital" and pair.country in wrong:
            pair = Instruction(
                pair.prompt,
                pair.response.replace(pair.answer, wrong[pair.country]),
                pair.kind,
                pair.country,
                wrong[pair.country],
            )
        pairs.append(pair)
    return pairs, wrong


def to_trl_rows(pairs: list[Instruction]) -> list[dict]:
    """trl's conversational prompt/completion format: the loss then covers the completion only."""
    return [
        {
            "prompt": [{"role": "user", "content": p.prompt}],
            "completion": [{"role": "assistant", "content": p.response}],
        }
        for p in pairs
    ]
