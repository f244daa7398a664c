"""lessons/*.md parse into complete Lesson objects whose text is the concept cards' text, section by section.

Run: pytest tests/test_lessons.py. The fidelity tests compare them with the concept cards as they were delivered,
kept verbatim in lessons/source-cards.txt.
"""

import ast
import itertools
from pathlib import Path

import pytest

from llmlab.lessons import LESSONS_DIR, SECTIONS, Lesson, load_lesson, load_lessons

LESSON_IDS = ["pretraining", "sft", "rlhf", "dpo"]
SOURCE = LESSONS_DIR / "source-cards.txt"  # the cards as delivered, verbatim


@pytest.fixture(scope="module")
def lessons() -> dict[str, Lesson]:
    return load_lessons()


@pytest.fixture(scope="module")
def source_cards() -> list[list[str]]:
    """The cards of the source text, each as its non-empty, whitespace-stripped lines."""
    lines = [line.strip() for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    # A card is: title line, tags line, then "One-line intuition" (its first section).
    starts = [i - 2 for i, line in enumerate(lines) if line == "One-line intuition"]
    return [lines[start:end] for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)]


def source_sections(card: list[str]) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    for line in card[2:]:
        if line in SECTIONS:
            sections[line] = current = []
        else:
            current.append(line)
    return sections


def stripped_lines(code: str) -> list[str]:
    return [line.strip() for line in code.splitlines() if line.strip()]


def lesson_sections(lesson: Lesson) -> dict[str, list[str]]:
    """The lesson's content per source section, as the source writes it: one line per paragraph or item."""
    sections = {
        "One-line intuition": lesson.intuition.split("\n\n"),
        "What problem it solves": lesson.problem.split("\n\n"),
        "How it works (intuition)": [
            line
            for block in lesson.how_it_works
            for line in (stripped_lines(block.text) if block.kind == "code" else [block.text])
        ],
        "Code example": stripped_lines(lesson.code_example),
        "Common misconception": lesson.misconception.split("\n\n"),
        "Key resources": [f"- {resource.text}" for resource in lesson.resources],
        "Where you see it": list(lesson.where_you_see_it),
        "English Summary": lesson.summary.split("\n\n"),
        "Think it through": [line for qa in lesson.qas for line in (qa.question, qa.answer)],
    }
    if not lesson.resources:
        del sections["Key resources"]
    return sections


def test_lessons_load_in_pipeline_order(lessons: dict[str, Lesson]) -> None:
    assert list(lessons) == LESSON_IDS
    assert [lesson.order for lesson in lessons.values()] == [1, 2, 3, 4]
    assert all(lesson.id == lesson_id for lesson_id, lesson in lessons.items())
    assert load_lesson("rlhf") == lessons["rlhf"]
    assert LESSONS_DIR == Path(__file__).resolve().parents[1] / "lessons"


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_every_section_is_present(lessons: dict[str, Lesson], lesson_id: str) -> None:
    lesson = lessons[lesson_id]
    assert lesson.title and lesson.short_title and lesson.tags[0] == "LLM"
    for text in (lesson.intuition, lesson.problem, lesson.code_example, lesson.misconception, lesson.summary):
        assert text.strip()
    assert [block.kind for block in lesson.how_it_works] == ["text", "code", "text"]
    assert len(lesson.where_you_see_it) == 2
    assert lesson.where_you_see_it[0].startswith("Canonical: ")
    assert lesson.where_you_see_it[1].startswith("Closer to home: ")
    if lesson_id == "dpo":  # the DPO card has no "Key resources"
        assert lesson.resources == ()
    else:
        assert len(lesson.resources) == 2
        assert all(resource.url and resource.url.startswith("https://") for resource in lesson.resources)


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_five_qas_with_stable_ids(lessons: dict[str, Lesson], lesson_id: str) -> None:
    lesson = lessons[lesson_id]
    assert [qa.id for qa in lesson.qas] == [f"{lesson_id}-q{n}" for n in range(1, 6)]
    assert all(qa.question.strip() and qa.answer.strip() for qa in lesson.qas)
    assert lesson.qa(f"{lesson_id}-q3") is lesson.qas[2]
    with pytest.raises(KeyError):
        lesson.qa(f"{lesson_id}-q6")


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_code_keeps_its_indentation(lessons: dict[str, Lesson], lesson_id: str) -> None:
    lesson = lessons[lesson_id]
    ast.parse(lesson.code_example)  # the runnable example must be valid Python
    for code in [lesson.code_example, *(b.text for b in lesson.how_it_works if b.kind == "code")]:
        lines = code.splitlines()
        for line, following in itertools.pairwise(lines):
            if line.split("#")[0].rstrip().endswith(":"):  # a block opener: its body is indented
                assert len(following) - len(following.lstrip()) > len(line) - len(line.lstrip()), line


@pytest.mark.parametrize("lesson_id", LESSON_IDS)
def test_text_matches_source_card(lessons: dict[str, Lesson], source_cards: list[list[str]], lesson_id: str) -> None:
    assert len(source_cards) == len(lessons)
    lesson = lessons[lesson_id]
    card = source_cards[lesson.order - 1]
    assert card[0] == lesson.short_title + lesson.title
    assert card[1] == "".join(lesson.tags)
    expected, actual = source_sections(card), lesson_sections(lesson)
    assert list(actual) == list(expected)  # same sections, same order
    for name in expected:
        assert actual[name] == expected[name], name


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    """Copy lessons/pretraining.md into tmp_path with one edit."""
    text = (LESSONS_DIR / "pretraining.md").read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "pretraining.md").write_text(text.replace(old, new, 1), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("old", "new", "section"),
    [
        (
            "## Common misconception\n",
            "",
            "Common misconception",
        ),  # section lost: its text joins the previous
        ("## English Summary\n", "## English summary\n", "English summary"),
        ("### Why don't OpenAI", "Why don't OpenAI", "Think it through"),  # four Q&As left
        ("{#pretraining-q2}", "{#pretraining-q1}", "Think it through"),
        ("{#pretraining-q2}", "", "Think it through"),
        ('# " Paris"\n```\n', '# " Paris"\n```\n\nA stray paragraph.\n', "Code example"),
        ("order: 1", "order: first", "front matter"),
        ("id: pretraining", "id: sft", "front matter"),
    ],
)
def test_malformed_file_raises_value_error(tmp_path: Path, old: str, new: str, section: str) -> None:
    directory = write_variant(tmp_path, old, new)
    with pytest.raises(ValueError) as error:
        load_lesson("pretraining", directory)
    assert "pretraining.md" in str(error.value) and section in str(error.value)


def test_hard_wrapped_paragraphs_and_optional_resources(tmp_path: Path) -> None:
    directory = write_variant(
        tmp_path,
        "Imagine handing a new hire the entire internet ",
        "Imagine handing\na new hire the entire internet ",
    )
    text = (directory / "pretraining.md").read_text(encoding="utf-8")
    start, end = text.index("## Key resources"), text.index("## Where you see it")
    (directory / "pretraining.md").write_text(text[:start] + text[end:], encoding="utf-8")
    lesson = load_lesson("pretraining", directory)
    assert lesson.intuition == load_lesson("pretraining").intuition
    assert lesson.resources == ()


def test_every_try_it_hint_belongs_to_a_question_of_its_card(lessons):
    for lesson in lessons.values():
        assert lesson.try_it, lesson.id  # every card has hints (lessons/try-it/<id>.md)
        ids = {qa.id for qa in lesson.qas}
        for hint in lesson.try_it:
            assert hint.qa_id in ids and hint.tab and hint.text, hint
        assert lesson.try_it_for(lesson.try_it[0].qa_id) == lesson.try_it[0]


def test_a_try_it_heading_without_a_tab_is_an_error(tmp_path):
    (tmp_path / "try-it").mkdir()
    (tmp_path / "try-it" / "x.md").write_text("# hints\n\n## x-q1 without a tab\n\nDo this.\n")
    from llmlab.lessons import load_try_it

    with pytest.raises(ValueError, match="question id"):
        load_try_it("x", tmp_path)
    assert load_try_it("nothing-here", tmp_path) == ()
