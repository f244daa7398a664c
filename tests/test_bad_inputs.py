"""Bad input on every page, as one table: each row opens a page (often by a URL with garbage in it), does one
bad thing, and must end with a clear message and a page that still works. Issue 7's "Bad input" list, plus
the bad inputs of the page issues (3-6).

Every case checks three things: (a) no exception element and no traceback text; (b) the message the page
shows for it (a substring of a toast, warning, error, info or, where the outcome is "shown as text", of the
page text); (c) a normal interaction afterwards still draws the page's main chart. Text boxes must show
what was typed as text: no element of any case may carry a raw `<script` tag.

Runs are kept few and short (a pre-training run stopped at once, NaN runs that die at step 2). A case that
reveals a bug in a page is marked xfail(strict=True) with the bug in its reason, for the lead to fix.

    python -m pytest -q tests/test_bad_inputs.py --durations=10
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from streamlit.runtime.caching import clear_session_resource_cache
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from llmlab import dpo
from llmlab.jobs import Job
from llmlab.pretrain import PretrainConfig
from tests.conftest import ROOT

PAGES = {"pt": "pages/1_Pretraining.py", "sft": "pages/2_SFT.py", "rl": "pages/3_RLHF.py", "dpo": "pages/4_DPO.py"}
LONG_RUN = {"pt_live_steps": "20000", "pt_live_batch": "4"}  # a pre-training run that only ends when stopped
SCRIPT = "<script>alert(1)</script>"
ODD = "\u202eevil\u200d e\u0301 \x00\x07\x1b[31m 🎉🧪 שלום مرحبا"  # RTL override, ZWJ, combining, controls, emoji
RAW_TAG = re.compile(r"(?<!\\)<script", re.IGNORECASE)  # "\<script" is Markdown-escaped, "&lt;script" HTML-escaped
_ids = itertools.count()


# -- the session: one id per test (two AppTests with one id are two tabs of one browser session) -------------


@pytest.fixture
def session(monkeypatch):
    """`session["id"]` is the session id of the next AppTest run. On teardown every session this test used
    is released (as when its tabs close), so no run outlives the test."""
    current = {"id": f"bad-{next(_ids)}"}
    used: set[str] = set()
    original = script_runner.ScriptRunner.__init__

    def init(self, *args, session_id, **kwargs):
        used.add(current["id"])
        original(self, *args, session_id=current["id"], **kwargs)

    monkeypatch.setattr(script_runner.ScriptRunner, "__init__", init)
    yield current
    for session_id in used:
        clear_session_resource_cache(session_id)


@pytest.fixture
def started(monkeypatch):
    """Every Job started during the test, in order (stopped and joined on teardown)."""
    jobs: list[Job] = []
    original = Job.start

    def start(self):
        jobs.append(self)
        return original(self)

    monkeypatch.setattr(Job, "start", start)
    yield jobs
    for job in jobs:
        job.stop()
    for job in jobs:
        job.join(timeout=60)


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.switch_page(PAGES[page])
    at.query_params.update(query or {})
    at.run()
    return at


# -- what a page shows -----------------------------------------------------------------------------------------


def notices(at: AppTest) -> str:
    """Every toast, warning, error, info and success text, sidebar included."""
    return " | ".join(e.value for e in [*at.toast, *at.warning, *at.error, *at.info, *at.success])


def page_text(at: AppTest) -> str:
    """The notices plus every caption, markdown, plain text and HTML snippet."""
    html = [e.proto.body for e in at.get("html")]
    return " | ".join([notices(at), *(e.value for e in [*at.caption, *at.markdown, *at.text]), *html])


def has_chart(at: AppTest, key: str) -> bool:
    return any(e.proto.id.endswith(key) for e in at.get("plotly_chart"))


def chart(at: AppTest, key: str) -> dict:
    return json.loads(next(e.proto.spec for e in at.get("plotly_chart") if e.proto.id.endswith(key)))


def assert_clean(at: AppTest) -> None:
    """(a) no exception element, no traceback text, and no user text turned into markup."""
    assert not at.exception, [e.message for e in at.exception]
    text = page_text(at)
    assert "Traceback" not in text
    assert not RAW_TAG.search(text), "user text reached the page as HTML/Markdown markup"


def poll(at: AppTest, done: Callable[[AppTest], bool], timeout: float = 120.0) -> None:
    """Rerun until `done(at)` (AppTest never fires the live panel's timer)."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, f"timed out; page says: {notices(at)[:300]}"
        time.sleep(0.3)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def press_anyway(at: AppTest, key: str) -> AppTest:
    """A click that reaches the server after the button was disabled (a double click, or a tab that has not
    redrawn yet): AppTest refuses to click a disabled widget, a browser's in-flight click does not ask."""
    at.button(key=key)._value = True
    return at.run()


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("llmlab-")]


# -- (c) the page still works: one normal interaction that draws its main chart ------------------------------


def pt_works(at: AppTest) -> None:
    at.text_area(key="pt_prompt").set_value("The capital of Italy is").run()
    assert_clean(at)
    sampling = chart(at, "pt_next_token_chart")["data"][-1]
    assert sampling["y"][0] == "&#x27; Rome&#x27;"  # the tiny model still knows its capitals


def sft_works(at: AppTest) -> None:
    at.text_area(key="sft_mask_prompt").set_value("What is the capital of Peru?")
    at.text_area(key="sft_mask_response").set_value("The capital of Peru is Lima.").run()
    assert_clean(at)
    assert has_chart(at, "sft_mask_chart") and {m.label for m in at.metric} >= {"Loss, response only"}


def rl_works(at: AppTest) -> None:
    at.select_slider(key="rl_beta").set_value(1.0).run()
    assert_clean(at)
    assert "β = 1 " in chart(at, "rl_sweep_bars")["layout"]["title"]["text"]


def dpo_works(at: AppTest) -> None:
    at.multiselect(key="dpo_loss_betas").set_value([0.5]).run()
    assert_clean(at)
    assert [t["name"] for t in chart(at, "dpo_loss_chart")["data"]] == ["loss, β = 0.5", "gradient weight, β = 0.5"]


WORKS = {"pt": pt_works, "sft": sft_works, "rl": rl_works, "dpo": dpo_works}


# -- the actions -----------------------------------------------------------------------------------------------
# Each takes the opened AppTest and the test's context; it returns the AppTest to check afterwards (default: the
# same one).


@dataclass
class Ctx:
    session: dict  # session["id"]: the id of the next AppTest run
    started: list[Job]  # the jobs started so far in this test
    monkeypatch: pytest.MonkeyPatch


def pt_prompt(text: str):
    def act(at, ctx):
        at.text_area(key="pt_prompt").set_value(text).run()

    return act


def pick_model(name: str):
    def act(at, ctx):
        at.selectbox(key="model_picker_select").select_index(-1).run()  # "Other: a local folder or HF id…"
        at.text_input(key="model_picker_text").set_value(name).run()

    return act


def pick_model_folder(files: dict[str, str]):
    """A local folder that looks like a model to the picker but is not one."""

    def act(at, ctx):
        import tempfile
        from pathlib import Path

        folder = Path(tempfile.mkdtemp(prefix="not-a-model-"))
        for name, text in files.items():
            (folder / name).write_text(text)
        pick_model(str(folder))(at, ctx)

    return act


def sft_pair(prompt: str, response: str):
    def act(at, ctx):
        at.text_area(key="sft_mask_prompt").set_value(prompt)
        at.text_area(key="sft_mask_response").set_value(response).run()

    return act


def rl_answers(a: str, b: str):
    def act(at, ctx):
        at.text_area(key="rl_score_a").set_value(a)
        at.text_area(key="rl_score_b").set_value(b).run()

    return act


def dpo_own_pair(prompt: str, chosen: str, rejected: str):
    def act(at, ctx):
        at.selectbox(key="dpo_example").select("Write your own pair…").run()
        at.text_input(key="dpo_own_prompt").set_value(prompt)
        at.text_input(key="dpo_own_chosen").set_value(chosen)
        at.text_input(key="dpo_own_rejected").set_value(rejected).run()

    return act


def empty_multiselect(key: str):
    def act(at, ctx):
        at.multiselect(key=key).set_value([]).run()

    return act


def rl_extreme_beta(at, ctx):
    """β = 0.001 from the URL: exp(r/β) would overflow without log-sum-exp."""
    kl = next(m.value for m in at.metric if m.label == "KL (nats)")
    assert kl not in ("nan", "inf") and float(kl) >= 0
    star = chart(at, "rl_sweep_bars")["data"][1]["x"]
    assert "nan" not in json.dumps(star).lower()


# Runs ----------------------------------------------------------------------------------------------------------


def pt_start(at: AppTest) -> None:
    at.button(key="pt_live_start").click().run()
    assert_clean(at)


def stopped(at: AppTest) -> bool:
    return "Stopped after" in notices(at)


def pt_stop_twice(at, ctx):
    pt_start(at)
    at.button(key="pt_live_stop").click().run()
    poll(at, stopped)
    assert at.button(key="pt_live_stop").disabled
    press_anyway(at, "pt_live_stop")  # the double click's second press
    assert_clean(at)


def pt_stop_before_start(at, ctx):
    assert at.button(key="pt_live_stop").disabled  # a browser cannot press it ...
    press_anyway(at, "pt_live_stop")  # ... but a stale tab's click can still arrive


def pt_reset_while_running(at, ctx):
    pt_start(at)
    at.button(key="pt_live_reset").click().run()
    ctx.started[0].join(timeout=30)
    assert ctx.started[0].status == "stopped"  # Reset stopped the run, it did not just hide it


def pt_reset_page_while_running(at, ctx):
    pt_start(at)
    at.button(key="reset_page").click().run()  # the sidebar's "Reset this page"
    ctx.started[0].join(timeout=30)
    assert ctx.started[0].status == "stopped"
    assert at.number_input(key="pt_live_steps").value == PretrainConfig().steps  # settings back to defaults
    assert at.query_params["pt_live_steps"] == str(PretrainConfig().steps)  # and so is the URL


def pt_close_tab_mid_run(at, ctx):
    pt_start(at)
    clear_session_resource_cache(ctx.session["id"])  # what Streamlit does when the session's last tab closes
    ctx.started[0].join(timeout=30)
    assert ctx.started[0].status == "stopped"
    ctx.session["id"] = f"{ctx.session['id']}-reopened"
    return open_page("pt")  # a new tab starts clean


def pt_two_tabs_one_session(at, ctx):
    """Tab B of the same browser session sees tab A's run and stops it; then A's stale Stop arrives."""
    pt_start(at)
    b = open_page("pt")
    assert "Running" in page_text(b)  # one session, one registry: B shows A's run ...
    b.button(key="pt_live_reset").click().run()  # ... and B resets it
    ctx.started[0].join(timeout=30)
    assert ctx.started[0].status == "stopped"
    press_anyway(at, "pt_live_stop")  # A still showed Stop enabled
    assert_clean(b)
    return at


def pt_start_in_two_tabs(at, ctx):
    """Both tabs of one session press Start: the second (stale) click must not start a second, unstoppable run."""
    b = open_page("pt")  # drawn before A starts: its Start is enabled
    pt_start(at)
    press_anyway(b, "pt_live_start")
    assert_clean(b)
    assert len(ctx.started) == 1, f"{len(ctx.started)} runs started; the first is no longer in the registry"
    at.button(key="pt_live_stop").click().run()
    poll(at, stopped)
    return at


def sft_diverge(at, ctx):
    at.slider(key="sft_live_steps").set_value(5)
    at.select_slider(key="sft_live_lr").set_value(100.0).run()
    at.button(key="sft_live_start").click().run()
    poll(at, lambda at: bool(at.error) or "Finished" in notices(at))
    assert at.button(key="sft_live_start").disabled is False  # ready for the next run


def dpo_diverge(at, ctx):
    original = dpo.dpo_config

    def exploding(settings, output_dir, device):
        config = original(settings, output_dir, device)
        config.learning_rate = 1e3  # beyond the slider: NaN weights within two steps
        return config

    ctx.monkeypatch.setattr(dpo, "dpo_config", exploding)
    at.slider(key="dpo_steps").set_value(10).run()
    at.button(key="dpo_live_start").click().run()
    poll(at, lambda at: bool(at.error) or "Finished" in notices(at))


# -- the table ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    page: str  # pt, sft, rl, dpo
    did: str  # what is done, as the test id
    expect: str  # a substring of the message shown
    query: dict[str, str] = field(default_factory=dict)  # the URL's query parameters
    act: Callable[[AppTest, Ctx], AppTest | None] | None = None  # the bad thing done after opening
    where: str = "notice"  # "notice": toasts, warnings, errors, infos; "page": any text on the page
    bug: str | None = None  # a known bug: the case is xfail(strict=True) until the page is fixed


def url(page: str, did: str, query: dict[str, str], expect: str, **kw) -> Case:
    return Case(page, did, expect, query=query, **kw)


CASES = [
    # URLs with garbage parameters: clamped or ignored with a notice.
    url("pt", "url-temperature-nan", {"pt_temperature": "nan"}, "'pt_temperature=nan' is not a valid value"),
    url(
        "pt", "url-temperature-negative", {"pt_temperature": "-5"}, "'pt_temperature' was below its range: set to 0.05"
    ),
    url("pt", "url-top-k-huge", {"pt_top_k": "99999999999"}, "'pt_top_k' was above its range: set to 10000000"),
    url("pt", "url-steps-overflow", {"pt_live_steps": "1e999"}, "'pt_live_steps=1e999' is not a valid value"),
    url("pt", "url-batch-not-a-choice", {"pt_live_batch": "7"}, "'pt_live_batch=7' is not one of the options"),
    url(
        "pt",
        "url-kind-script",
        {"pt_dq_kind": SCRIPT},
        "is not one of the options: using random_capital",
        bug="URL text reaches st.warning/st.toast (Markdown) unescaped: ui/urlstate.py Param.parse puts raw[:40] "
        "into the notice, shown by urlstate.restore's st.toast and pages/1_Pretraining.py's st.warning (also "
        "pages/4_DPO.py settings_widgets); ?pt_dq_kind=[click](http://evil.example) draws a link. Fix: md_escape "
        "the raw text in Param.parse.",
    ),  # fmt: skip
    url("pt", "url-huge-value", {"pt_ch_n": "9" * 100_000}, f"'pt_ch_n={'9' * 40}' is not a valid value"),
    url("pt", "url-emoji-rtl", {"pt_ch_d": "🎉\u200fשלום"}, "is not a valid value: using 100.0"),
    url("pt", "url-presenter-maybe", {"presenter": "maybe"}, "'presenter=maybe' is not a valid value"),
    url("rl", "url-beta-1e999", {"rl_beta": "1e999"}, "'rl_beta=1e999' is not a valid value"),
    url("rl", "url-steps-huge", {"rl_steps": "99999"}, "'rl_steps' was above its range: set to 200"),
    url("rl", "url-lr-emoji", {"rl_lr": "🎉"}, "'rl_lr=🎉' is not a valid value"),
    url("rl", "url-rm-lr-not-a-choice", {"rl_rm_lr": "0.5"}, "'rl_rm_lr=0.5' is not one of the options"),
    url(
        "rl",
        "url-beta-extreme-0.001",
        {"rl_beta": "0.001"},
        "E[reward-model score] goes",
        where="page",
        act=rl_extreme_beta,
    ),  # fmt: skip
    url("dpo", "url-beta-1e999", {"dpo_beta": "1e999"}, "β must be a positive number"),
    url("dpo", "url-beta-between-choices", {"dpo_beta": "0.042"}, "β must be one of the slider's values"),
    url("dpo", "url-steps-negative", {"dpo_steps": "-100"}, "'dpo_steps' was below its range: set to 10"),
    url("dpo", "url-steps-words", {"dpo_steps": "ten"}, "'dpo_steps=ten' is not a valid value"),
    # Text boxes: empty, huge, odd unicode and markup (shown as text, never as HTML).
    Case("pt", "prompt-empty", "The prompt is empty", act=pt_prompt("")),
    Case("pt", "prompt-10k-chars", "longer than the model's context", act=pt_prompt("The capital " * 850)),
    Case(
        "pt",
        "prompt-script-odd-unicode",
        "tokens; the small number on each",
        act=pt_prompt(f"Hi {SCRIPT} {ODD}"),
        where="page",
    ),
    Case("pt", "model-unknown-id", "Could not load 'no-such-org/model-404'", act=pick_model("no-such-org/model-404")),
    Case("pt", "model-folder-without-config", "has no config.json", act=pick_model_folder({"README.md": "hi"})),
    Case("pt", "model-folder-broken-config", "Could not load", act=pick_model_folder({"config.json": "{not json"})),
    Case("sft", "instruction-empty", "The instruction is empty", act=sft_pair("", "Paris.")),
    Case("sft", "response-10k-chars", "but the model's context is", act=sft_pair("Hi", "Paris. " * 1500)),
    Case(
        "sft", "instruction-script-odd", "The training text in", act=sft_pair(f"{SCRIPT} {ODD}", "Paris."), where="page"
    ),
    Case("rl", "typed-answer-empty", "Type both answers", act=rl_answers("", "Paris.")),
    Case(
        "rl",
        "typed-answer-10k-chars",
        "Scores are in logit units",
        act=rl_answers("Thank you! " * 900, "Paris."),
        where="page",
    ),  # fmt: skip
    Case("rl", "typed-answer-script-odd", "Correct? A: no", act=rl_answers(f"{SCRIPT} {ODD}", "Paris."), where="page"),
    Case(
        "dpo",
        "pair-identical",
        "identical",
        act=dpo_own_pair("Where is Peru?", "In South America.", "In South America."),
    ),
    Case("dpo", "pair-prompt-empty", "The prompt is empty", act=dpo_own_pair("", "Paris.", "Rome.")),
    Case("dpo", "pair-answer-blank", "An answer is empty", act=dpo_own_pair("Where is Peru?", " ", "Rome.")),
    Case(
        "dpo", "pair-script-odd", "Paris \\<script\\>", act=dpo_own_pair(ODD, f"Paris {SCRIPT}", "Rome."), where="page"
    ),
    Case("dpo", "loss-no-beta", "Pick at least one β to draw its loss", act=empty_multiselect("dpo_loss_betas")),
    Case("dpo", "sweep-no-beta", "Pick at least one β to sweep", act=empty_multiselect("dpo_sweep_betas")),
    # Stop / Reset races, closing a tab mid-run, two tabs of one session.
    Case("pt", "stop-before-start", "Start pre-trains a fresh", act=pt_stop_before_start, where="page"),
    Case("pt", "stop-pressed-twice", "Stopped after", query=LONG_RUN, act=pt_stop_twice),
    Case(
        "pt",
        "reset-while-running",
        "Start pre-trains a fresh",
        query=LONG_RUN,
        act=pt_reset_while_running,
        where="page",
    ),  # fmt: skip
    Case(
        "pt",
        "reset-page-while-running",
        "Start pre-trains a fresh",
        query=LONG_RUN,
        act=pt_reset_page_while_running,
        where="page",
    ),  # fmt: skip
    Case(
        "pt", "close-tab-mid-run", "Start pre-trains a fresh", query=LONG_RUN, act=pt_close_tab_mid_run, where="page"
    ),  # fmt: skip
    Case(
        "pt",
        "two-tabs-reset-then-stale-stop",
        "Start pre-trains a fresh",
        query=LONG_RUN,
        act=pt_two_tabs_one_session,
        where="page",
    ),  # fmt: skip
    Case("pt", "two-tabs-both-press-start", "Stopped after", query=LONG_RUN, act=pt_start_in_two_tabs),
    # A learning rate that makes the loss NaN: the run stops with a message.
    Case("sft", "learning-rate-nan", "learning rate is too high", act=sft_diverge),
    Case("dpo", "learning-rate-nan", "learning rate is too high", act=dpo_diverge),
]


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else []
        yield pytest.param(case, id=f"{case.page}-{case.did}", marks=marks)


@pytest.mark.parametrize("case", _params())
def test_bad_input_ends_with_a_clear_message_and_a_working_page(case, session, started, monkeypatch):
    at = open_page(case.page, case.query)
    if case.act is not None:
        at = case.act(at, Ctx(session, started, monkeypatch)) or at
    assert_clean(at)  # (a)
    shown = notices(at) if case.where == "notice" else page_text(at)
    assert case.expect in shown, shown[:2000]  # (b)
    WORKS[case.page](at)  # (c)


def test_the_table_covers_every_page_and_at_least_30_cases():
    assert len(CASES) >= 30
    assert {c.page for c in CASES} == set(PAGES)
    assert len({(c.page, c.did) for c in CASES}) == len(CASES)  # readable, unique ids
