"""The four concept cards (pre-training, SFT, RLHF, DPO) as typed data, parsed from the Markdown files in lessons/.

One file per card, `lessons/<id>.md`, written to be edited by hand:

    ---
    id: pretraining                 # must equal the file name
    title: Pre-training             # display title
    short_title: Pre-training
    tags: [LLM, Training]
    order: 1                        # position in the pipeline, 1..n
    ---

    ## One-line intuition
    ## What problem it solves
    ## How it works (intuition)     prose paragraphs and ```python fenced pseudocode, in reading order
    ## Code example                 exactly one fenced code block
    ## Common misconception
    ## Key resources                optional; one "- [text](url)" or "- text" per line
    ## Where you see it             one paragraph each ("Canonical: ...", "Closer to home: ...")
    ## English Summary
    ## Think it through             exactly five "### <question> {#<id>-q<n>}" headings, each followed by its answer

Beside each card, `lessons/try-it/<id>.md` (optional) says which demo shows each question on the model:

    ## <question id> · <demo tab label>
    What to do there (one paragraph).

Every section but "Key resources" is required. Paragraphs are separated by blank lines; the lines of one
paragraph are joined with spaces, so hard-wrapping a paragraph does not change its text. Text is kept as written
(no Markdown is interpreted here). A malformed file raises ValueError naming the file and the section.

Usage: `load_lessons()["dpo"].qa("dpo-q3").answer`. Never imports streamlit; the pages render these objects.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

LESSONS_DIR: Path = Path(__file__).resolve().parent.parent / "lessons"
TRY_IT_DIR = "try-it"  # under LESSONS_DIR

T = TypeVar("T")

N_QUESTIONS = 5
FRONT_MATTER_KEYS = ("id", "title", "short_title", "tags", "order")
# The section headings exactly as the cards write them, in card order.
SECTIONS = (
    "One-line intuition",
    "What problem it solves",
    "How it works (intuition)",
    "Code example",
    "Common misconception",
    "Key resources",
    "Where you see it",
    "English Summary",
    "Think it through",
)
OPTIONAL_SECTIONS = {"Key resources"}  # the DPO card has none

_LINK = re.compile(r"- \[(?P<text>.+)\]\((?P<url>\S+)\)")
_QUESTION = re.compile(r"### (?P<question>.+?)\s*\{#(?P<id>[\w-]+)\}")
_TRY_IT = re.compile(r"## (?P<id>[\w-]+) · (?P<tab>.+)")


@dataclass(frozen=True)
class Block:
    """A piece of "How it works": a prose paragraph or a code listing (indentation kept)."""

    kind: str  # "text" or "code"
    text: str


@dataclass(frozen=True)
class Resource:
    """A "Key resources" entry: its text exactly as on the card, and where it lives (None if no link)."""

    text: str
    url: str | None


@dataclass(frozen=True)
class QA:
    """A "Think it through" question and its answer; `id` is stable, e.g. "pretraining-q3"."""

    id: str
    question: str
    answer: str


@dataclass(frozen=True)
class TryIt:
    """Where a question is shown on the model: the page's demo tab, and what to do there."""

    qa_id: str
    tab: str
    text: str


@dataclass(frozen=True)
class Lesson:
    """One concept card. Prose fields hold paragraphs separated by a blank line ("\\n\\n")."""

    id: str
    order: int
    title: str
    short_title: str
    tags: tuple[str, ...]
    intuition: str
    problem: str
    how_it_works: tuple[Block, ...]
    code_example: str
    misconception: str
    resources: tuple[Resource, ...]
    where_you_see_it: tuple[str, ...]
    summary: str
    qas: tuple[QA, ...]
    try_it: tuple[TryIt, ...] = ()  # from lessons/try-it/<id>.md

    def try_it_for(self, qa_id: str) -> TryIt | None:
        return next((t for t in self.try_it if t.qa_id == qa_id), None)

    def qa(self, qa_id: str) -> QA:
        """The Q&A with this id; KeyError if the lesson has none."""
        for qa in self.qas:
            if qa.id == qa_id:
                return qa
        raise KeyError(f"lesson {self.id!r} has no Q&A {qa_id!r}")


def load_lesson(lesson_id: str, directory: Path = LESSONS_DIR) -> Lesson:
    """Parse `<directory>/<lesson_id>.md`."""
    path = Path(directory) / f"{lesson_id}.md"
    meta, body = _split_front_matter(path.read_text(encoding="utf-8").splitlines(), path)
    if meta["id"] != lesson_id:
        raise ValueError(f"{path}: front matter: id {meta['id']!r} does not match the file name")
    sections = _split_sections(body, path)

    def section(name: str, parse: Callable[[list[str], str], T]) -> T:
        """Parse one section's lines; `where` (for error messages) names the file and the section."""
        return parse(sections.get(name, []), f"{path}: section {name!r}")

    try:
        order = int(meta["order"])
    except ValueError:
        raise ValueError(f"{path}: front matter: order {meta['order']!r} is not an integer") from None
    return Lesson(
        id=lesson_id,
        order=order,
        title=meta["title"],
        short_title=meta["short_title"],
        tags=tuple(tag.strip() for tag in meta["tags"].strip("[]").split(",") if tag.strip()),
        intuition=section("One-line intuition", _prose),
        problem=section("What problem it solves", _prose),
        how_it_works=section("How it works (intuition)", _blocks),
        code_example=section("Code example", _code),
        misconception=section("Common misconception", _prose),
        resources=section("Key resources", _resources),
        where_you_see_it=section("Where you see it", _paragraphs),
        summary=section("English Summary", _prose),
        qas=section("Think it through", lambda lines, where: _qas(lines, lesson_id, where)),
        try_it=load_try_it(lesson_id, directory),
    )


def load_try_it(lesson_id: str, directory: Path = LESSONS_DIR) -> tuple[TryIt, ...]:
    """`<directory>/try-it/<lesson_id>.md`: the "## <question id> · <tab>" sections (none if there is no file)."""
    path = Path(directory) / TRY_IT_DIR / f"{lesson_id}.md"
    if not path.is_file():
        return ()
    hints: list[TryIt] = []
    heading: re.Match | None = None
    body: list[str] = []

    def end() -> None:
        if heading is not None:
            where = f"{path}: {heading['id']}"
            hints.append(TryIt(heading["id"], heading["tab"].strip(), _prose(body, where)))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            end()
            heading, body = _TRY_IT.fullmatch(line.strip()), []
            if heading is None:
                raise ValueError(f"{path}: expected '## <question id> · <tab>', found {line!r}")
        elif heading is not None:
            body.append(line)
    end()
    return tuple(hints)


def load_lessons(directory: Path = LESSONS_DIR) -> dict[str, Lesson]:
    """Every `*.md` lesson in `directory`, keyed by id, in pipeline order."""
    lessons = sorted(
        (load_lesson(path.stem, directory) for path in Path(directory).glob("*.md")),
        key=lambda lesson: lesson.order,
    )
    orders = [lesson.order for lesson in lessons]
    if len(set(orders)) != len(orders):
        raise ValueError(f"{directory}: two lessons share an order: {orders}")
    return {lesson.id: lesson for lesson in lessons}


def _split_front_matter(lines: list[str], path: Path) -> tuple[dict[str, str], list[str]]:
    """The `key: value` lines between the opening and closing `---`, and the lines after them."""
    fences = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if len(fences) < 2 or fences[0] != 0:
        raise ValueError(f"{path}: front matter: the file must start with a '---' ... '---' block")
    end = fences[1]
    meta = {}
    for line in filter(str.strip, lines[1:end]):
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in FRONT_MATTER_KEYS:
            raise ValueError(f"{path}: front matter: unexpected line {line!r} (keys: {', '.join(FRONT_MATTER_KEYS)})")
        meta[key.strip()] = value.strip()
    missing = [key for key in FRONT_MATTER_KEYS if not meta.get(key)]
    if missing:
        raise ValueError(f"{path}: front matter: missing {', '.join(missing)}")
    return meta, lines[end + 1 :]


def _split_sections(lines: list[str], path: Path) -> dict[str, list[str]]:
    """Section heading -> its lines, for the `## ` headings outside code fences; all required ones present."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_fence = False
    for line in lines:
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            name = line[3:].strip()
            if name not in SECTIONS or name in sections:
                problem = "appears twice" if name in sections else f"is not one of: {', '.join(SECTIONS)}"
                raise ValueError(f"{path}: section {name!r} {problem}")
            sections[name] = current = []
        elif current is not None:
            current.append(line)
        elif line.strip():
            raise ValueError(f"{path}: text before the first section: {line!r}")
    missing = [name for name in SECTIONS if name not in sections and name not in OPTIONAL_SECTIONS]
    if missing:
        raise ValueError(f"{path}: section {missing[0]!r} is missing (missing: {', '.join(missing)})")
    return sections


def _blocks(lines: list[str], where: str) -> tuple[Block, ...]:
    """Paragraphs (lines joined with spaces) and fenced code listings, in order; at least one."""
    blocks: list[Block] = []
    paragraph: list[str] = []
    code: list[str] | None = None

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(Block("text", " ".join(paragraph)))
            paragraph.clear()

    for line in lines:
        if code is not None:
            if line.strip() == "```":
                blocks.append(Block("code", "\n".join(code)))
                code = None
            else:
                code.append(line.rstrip())
        elif line.startswith("```"):
            end_paragraph()
            code = []
        elif line.strip():
            paragraph.append(line.strip())
        else:
            end_paragraph()
    if code is not None:
        raise ValueError(f"{where}: a code fence is not closed")
    end_paragraph()
    if not blocks:
        raise ValueError(f"{where}: the section is empty")
    return tuple(blocks)


def _paragraphs(lines: list[str], where: str) -> tuple[str, ...]:
    blocks = _blocks(lines, where)
    if any(block.kind == "code" for block in blocks):
        raise ValueError(f"{where}: expected prose, found a code block")
    return tuple(block.text for block in blocks)


def _prose(lines: list[str], where: str) -> str:
    return "\n\n".join(_paragraphs(lines, where))


def _code(lines: list[str], where: str) -> str:
    blocks = _blocks(lines, where)
    if [block.kind for block in blocks] != ["code"]:
        raise ValueError(f"{where}: expected exactly one fenced code block and nothing else")
    return blocks[0].text


def _resources(lines: list[str], where: str) -> tuple[Resource, ...]:
    resources = []
    for item in filter(None, map(str.strip, lines)):
        if not item.startswith("- "):
            raise ValueError(f"{where}: expected '- [text](url)' or '- text', found {item!r}")
        link = _LINK.fullmatch(item)
        resources.append(Resource(link["text"], link["url"]) if link else Resource(item[2:].strip(), None))
    return tuple(resources)


def _qas(lines: list[str], lesson_id: str, where: str) -> tuple[QA, ...]:
    """Five `### question {#id}` headings, each followed by its answer paragraph(s)."""
    headings = [i for i, line in enumerate(lines) if line.startswith("### ")]
    if any(line.strip() for line in lines[: headings[0] if headings else len(lines)]):
        raise ValueError(f"{where}: text before the first '### question {{#id}}' heading")
    qas = []
    for start, end in zip(headings, [*headings[1:], len(lines)], strict=True):
        question = _QUESTION.fullmatch(lines[start].strip())
        if not question:
            raise ValueError(f"{where}: question heading without an id: {lines[start]!r}")
        answer = _prose(lines[start + 1 : end], f"{where}: answer to {question['id']!r}")
        qas.append(QA(question["id"], question["question"], answer))
    ids = [qa.id for qa in qas]
    if len(qas) != N_QUESTIONS or len(set(ids)) != len(ids):
        raise ValueError(f"{where}: expected {N_QUESTIONS} Q&As with unique ids, found {len(qas)}: {ids}")
    if not all(qa_id.startswith(f"{lesson_id}-") for qa_id in ids):
        raise ValueError(f"{where}: Q&A ids must start with '{lesson_id}-': {ids}")
    return tuple(qas)


WORKSHOP_FILE = "workshop/routes.md"  # under LESSONS_DIR: the suggested routes through the app, shown on Home
_ROUTE_STEP = re.compile(r"^\d+\. \*\*(?P<page>[^·*]+?) · (?P<tab>[^(*]+?) \(")  # "1. **SFT · Loss mask (5 min)."


@dataclass(frozen=True)
class WorkshopRoute:
    title: str  # e.g. "60 minutes"
    text: str  # its markdown: numbered steps
    steps: tuple[tuple[str, str], ...]  # (page, tab) each step names, e.g. ("SFT", "Loss mask")


def load_workshop(directory: Path = LESSONS_DIR) -> tuple[str, tuple[WorkshopRoute, ...]]:
    """`<directory>/workshop/routes.md`: its introduction and its "## " routes, each with the (page, tab) of its steps."""
    lines = (Path(directory) / WORKSHOP_FILE).read_text(encoding="utf-8").splitlines()
    intro: list[str] = []
    routes: list[tuple[str, list[str]]] = []
    for line in lines:
        if line.startswith("# "):
            continue
        if line.startswith("## "):
            routes.append((line[3:].strip(), []))
        elif routes:
            routes[-1][1].append(line)
        else:
            intro.append(line)
    if not routes:
        raise ValueError(f"{WORKSHOP_FILE}: no '## ' route")
    return " ".join(x.strip() for x in intro if x.strip()), tuple(
        WorkshopRoute(
            title,
            "\n".join(body).strip(),
            tuple((m["page"].strip(), m["tab"].strip()) for m in map(_ROUTE_STEP.match, body) if m),
        )
        for title, body in routes
    )
