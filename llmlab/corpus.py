"""The generated "mini-internet": a small English corpus with a known structure.

Every bundled model is trained on text made here, so the app never downloads data. The corpus mixes
templated facts (capitals, languages, continents of 40 countries, in several phrasings), short stories,
arithmetic, tiny Python snippets and question/answer lines. It is seeded and deterministic: the same
seed gives byte-identical text on every machine.

    from llmlab.corpus import generate_corpus
    text = generate_corpus(seed=0)          # ~1.5 MB of text, documents separated by blank lines
"""

from __future__ import annotations

import random
from dataclasses import dataclass

EOS = "<|endoftext|>"


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    language: str
    continent: str


# (name, capital, language, continent). "the" is part of a name where English needs it.
COUNTRIES: tuple[Country, ...] = tuple(
    Country(*row)
    for row in [
        ("France", "Paris", "French", "Europe"),
        ("Germany", "Berlin", "German", "Europe"),
        ("Italy", "Rome", "Italian", "Europe"),
        ("Spain", "Madrid", "Spanish", "Europe"),
        ("Japan", "Tokyo", "Japanese", "Asia"),
        ("China", "Beijing", "Chinese", "Asia"),
        ("India", "New Delhi", "Hindi", "Asia"),
        ("Russia", "Moscow", "Russian", "Europe"),
        ("Egypt", "Cairo", "Arabic", "Africa"),
        ("Canada", "Ottawa", "English", "North America"),
        ("Australia", "Canberra", "English", "Oceania"),
        ("Brazil", "Brasilia", "Portuguese", "South America"),
        ("Mexico", "Mexico City", "Spanish", "North America"),
        ("Argentina", "Buenos Aires", "Spanish", "South America"),
        ("Peru", "Lima", "Spanish", "South America"),
        ("Chile", "Santiago", "Spanish", "South America"),
        ("Colombia", "Bogota", "Spanish", "South America"),
        ("Kenya", "Nairobi", "Swahili", "Africa"),
        ("Nigeria", "Abuja", "English", "Africa"),
        ("Ghana", "Accra", "English", "Africa"),
        ("Morocco", "Rabat", "Arabic", "Africa"),
        ("Greece", "Athens", "Greek", "Europe"),
        ("Portugal", "Lisbon", "Portuguese", "Europe"),
        ("Ireland", "Dublin", "English", "Europe"),
        ("Poland", "Warsaw", "Polish", "Europe"),
        ("Austria", "Vienna", "German", "Europe"),
        ("Hungary", "Budapest", "Hungarian", "Europe"),
        ("Sweden", "Stockholm", "Swedish", "Europe"),
        ("Norway", "Oslo", "Norwegian", "Europe"),
        ("Finland", "Helsinki", "Finnish", "Europe"),
        ("Denmark", "Copenhagen", "Danish", "Europe"),
        ("the Netherlands", "Amsterdam", "Dutch", "Europe"),
        ("Belgium", "Brussels", "Dutch", "Europe"),
        ("Switzerland", "Bern", "German", "Europe"),
        ("Turkey", "Ankara", "Turkish", "Asia"),
        ("Iran", "Tehran", "Persian", "Asia"),
        ("Thailand", "Bangkok", "Thai", "Asia"),
        ("Vietnam", "Hanoi", "Vietnamese", "Asia"),
        ("South Korea", "Seoul", "Korean", "Asia"),
        ("Indonesia", "Jakarta", "Indonesian", "Asia"),
    ]
)

# The canonical phrasing comes first and is the most frequent: it is the probe the app asks about.
CAPITAL_PHRASINGS = (
    "The capital of {c} is {cap}.",
    "The capital of {c} is {cap}.",
    "The capital of {c} is {cap}.",
    "{cap} is the capital of {c}.",
    "The capital city of {c} is {cap}.",
    "{cap} is the capital city of {c}.",
    "{C}'s capital is {cap}.",
    "Q: What is the capital of {c}? A: {cap}.",
    "The capital of {c} is {cap}, a large city in {continent}.",
)
OTHER_FACTS = (
    "People in {c} speak {lang}.",
    "The main language of {c} is {lang}.",
    "{C} is a country in {continent}.",
    "{C} is in {continent}.",
    "Q: Which language do people speak in {c}? A: {lang}.",
    "Q: Where is {c}? A: In {continent}.",
)

NAMES = ("Tom", "Lily", "Sam", "Mia", "Ben", "Anna", "Max", "Zoe", "Leo", "Emma", "Jack", "Lucy")
ANIMALS = ("cat", "dog", "bird", "fox", "rabbit", "bear", "frog", "duck", "mouse", "horse")
PLACES = ("small town", "big forest", "quiet village", "busy city", "green valley", "sunny farm")
OBJECTS = ("red ball", "blue hat", "old book", "shiny key", "small boat", "yellow kite", "warm cake")
FEELINGS = ("happy", "sad", "brave", "tired", "curious", "proud")
ACTIONS = ("play in the park", "read books", "sing songs", "run by the river", "draw pictures", "bake bread")

CODE_TEMPLATES = (
    "def {name}(a, b):\n    return a {op} b\n\nprint({name}({x}, {y}))\n# prints {result}",
    "x = {x}\ny = {y}\nz = x {op} y\nprint(z)\n# prints {result}",
    "numbers = [{x}, {y}]\ntotal = 0\nfor n in numbers:\n    total = total + n\nprint(total)\n# prints {sum}",
    "def is_even(n):\n    return n % 2 == 0\n\nprint(is_even({x}))\n# prints {even}",
)
OPS = (("add", "+"), ("subtract", "-"), ("multiply", "*"))


def _fill(template: str, country: Country) -> str:
    name = country.name
    return template.format(
        c=name,
        C=name[0].upper() + name[1:],
        cap=country.capital,
        lang=country.language,
        continent=country.continent,
    )


def fact_sentences(rng: random.Random, n: int) -> list[str]:
    """n single-sentence facts about the 40 countries, capitals three times as often as other facts."""
    out = []
    for _ in range(n):
        country = rng.choice(COUNTRIES)
        template = rng.choice(CAPITAL_PHRASINGS if rng.random() < 0.75 else OTHER_FACTS)
        out.append(_fill(template, country))
    return out


def story(rng: random.Random) -> str:
    name, friend = rng.sample(NAMES, 2)
    animal, obj, place = rng.choice(ANIMALS), rng.choice(OBJECTS), rng.choice(PLACES)
    feeling, action = rng.choice(FEELINGS), rng.choice(ACTIONS)
    return (
        f"Once upon a time, a little {animal} named {name} lived in a {place}. "
        f"Every day, {name} liked to {action}. "
        f"One day, {name} found a {obj}. {name} was very {feeling}. "
        f"{name} showed the {obj} to {friend}, and they played together until the sun went down. "
        f"The end."
    )


def arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    if rng.random() < 0.5:
        return f"{a} + {b} = {a + b}."
    if rng.random() < 0.5:
        return f"Q: What is {a} + {b}? A: {a + b}."
    a, b = max(a, b), min(a, b)
    return f"{a} - {b} = {a - b}."


def code_snippet(rng: random.Random) -> str:
    x, y = rng.randint(1, 9), rng.randint(1, 9)
    name, op = rng.choice(OPS)
    result = {"+": x + y, "-": x - y, "*": x * y}[op]
    template = rng.choice(CODE_TEMPLATES)
    return template.format(name=name, op=op, x=x, y=y, result=result, sum=x + y, even=x % 2 == 0)


def generate_documents(seed: int = 0, n_documents: int = 12_000) -> list[str]:
    """The corpus as a list of documents (a paragraph of facts, a story, sums, or code)."""
    rng = random.Random(seed)
    docs: list[str] = []
    for _ in range(n_documents):
        kind = rng.random()
        if kind < 0.55:
            docs.append(" ".join(fact_sentences(rng, rng.randint(2, 5))))
        elif kind < 0.75:
            docs.append(story(rng))
        elif kind < 0.9:
            docs.append(" ".join(arithmetic(rng) for _ in range(rng.randint(2, 5))))
        else:
            docs.append(code_snippet(rng))
    return docs


def generate_corpus(seed: int = 0, n_documents: int = 12_000) -> str:
    """The corpus as one string; each document ends with the end-of-text token."""
    return "".join(doc + EOS + "\n" for doc in generate_documents(seed, n_documents))


def capital_prompt(country: Country) -> str:
    """The probe prompt for one country, e.g. "The capital of France is"."""
    return f"The capital of {country.name} is"
