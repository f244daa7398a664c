"""Bad input on every page, as one table: each row opens a page (often by a URL with garbage in it), does one
bad thing, and must end with a clear message and a page that still works. Issue 7's "Bad input" list, plus
the bad inputs of the page issues (3-6).

Every case checks three things: (a) no exception element and no traceback text; (b) the message the page
shows for it (a substring of a toast, warning, error, info or, where the outcome is "shown as text", of the
page text); (c) a normal interaction afterwards still draws the page's main chart. Text boxes must show
what was typed as text: no element of any case may carry a raw `<script` tag.

Runs are kept few and short: pre-training runs stopped at once, and learning rates that make the loss NaN
within a few steps. A case that reveals a bug in a page is marked xfail(strict=True) with the bug (file, line,
how to reproduce, a fix) in its reason, for the lead to fix; the case then passes and the mark must go.

    python -m pytest -q tests/test_bad_inputs.py --durations=10
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.caching import clear_session_resource_cache
from streamlit.testing.v1 import AppTest

from llmlab import dpo, rlhf, votes
from llmlab.jobs import Job
from llmlab.pretrain import PretrainConfig
from tests import conftest
from tests.conftest import chart, has_chart, instant, set_in_browser
from tests.test_pages import array

PAGES = {"pt": "pages/1_Pretraining.py", "sft": "pages/2_SFT.py", "rl": "pages/3_RLHF.py", "dpo": "pages/4_DPO.py"}
IDLE = "Start pre-trains a fresh"  # the live pre-training panel's idle message: no run in this session
LONG_RUN = {"pt_live_steps": "20000", "pt_live_batch": "4"}  # a pre-training run that only ends when stopped
SCRIPT = "<script>alert(1)</script>"
ODD = "\u202eevil\u200d e\u0301 \x00\x07\x1b[31m 🎉🧪 שלום مرحبا"  # RTL override, ZWJ, combining, controls, emoji
RAW_TAG = re.compile(r"(?<!\\)<script", re.IGNORECASE)  # "\<script" is Markdown-escaped, "&lt;script" HTML-escaped


@pytest.fixture
def released(session):
    """On teardown, release this test's sessions as Streamlit does when their last tab closes: the run
    registry's on_release stops every run, so none outlives the test. (`session` is conftest's: one id per
    test, shared by all its AppTests, i.e. tabs of one browser session.)"""
    first = session["id"]
    yield
    for session_id in {first, session["id"]}:
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
    return conftest.open_page(PAGES[page], query, timeout_s=300)


# -- what a page shows -----------------------------------------------------------------------------------------


def notices(at: AppTest) -> str:
    """Every toast, warning, error, info and success text, sidebar included."""
    return " | ".join(e.value for e in [*at.toast, *at.warning, *at.error, *at.info, *at.success])


def page_text(at: AppTest) -> str:
    """The notices plus every caption, markdown, plain text and HTML snippet."""
    html = [e.proto.body for e in at.get("html")]
    return " | ".join([notices(at), *(e.value for e in [*at.caption, *at.markdown, *at.text]), *html])


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
        time.sleep(0.2)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def press_anyway(at: AppTest, key: str) -> AppTest:
    """A click that reaches the server after the button was disabled (a double click, or a tab that has not
    redrawn yet): AppTest refuses to click a disabled widget, a browser's in-flight click does not ask."""
    at.button(key=key)._value = True
    return at.run()


# -- (c) the page still works: one normal interaction that draws its main chart ------------------------------


def pt_works(at: AppTest) -> None:
    at.text_area(key="pt_prompt").set_value("The capital of Italy is").run()
    assert_clean(at)
    data = instant(at, "pt_next_token")  # the distribution the browser draws (ui/instant.py)
    top = max(range(len(data["logits"])), key=data["logits"].__getitem__)
    assert data["labels"][str(top)] == "' Rome'"  # the tiny model still knows its capitals


def sft_works(at: AppTest) -> None:
    at.text_area(key="sft_mask_prompt").set_value("What is the capital of Peru?")
    at.text_area(key="sft_mask_response").set_value("The capital of Peru is Lima.").run()
    assert_clean(at)
    assert has_chart(at, "sft_mask_chart") and {m.label for m in at.metric} >= {"Loss, response only"}


def rl_works(at: AppTest) -> None:
    set_in_browser(at, "rl_sweep_beta", 1.0)  # the end of a drag on the browser-drawn β slider
    at.run()
    assert_clean(at)
    data = instant(at, "rl_sweep_live")
    assert data["controls"][0]["value"] == 1.0 and data["candidates"]["texts"]  # (one, for identical samples)


def dpo_works(at: AppTest) -> None:
    at.multiselect(key="dpo_loss_betas").set_value([0.5]).run()
    assert_clean(at)
    assert instant(at, "dpo_loss_live")["betas"] == [0.5]  # the curves to compare with the slider's


WORKS = {"pt": pt_works, "sft": sft_works, "rl": rl_works, "dpo": dpo_works}


# -- the actions -----------------------------------------------------------------------------------------------
# Each takes the opened AppTest and the test's context; it returns the AppTest to check afterwards (default: the
# same one).


@dataclass
class Ctx:
    """What an action may use besides the page."""

    session: dict  # session["id"]: the id of the next AppTest run
    started: list[Job]  # the jobs started so far in this test
    monkeypatch: pytest.MonkeyPatch
    tmp_path: Path


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
        folder = ctx.tmp_path / "not-a-model"
        folder.mkdir()
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
        at.selectbox(key="dpo_loss_example").select("Write your own pair…").run()
        at.text_input(key="dpo_own_prompt").set_value(prompt)
        at.text_input(key="dpo_own_chosen").set_value(chosen)
        at.text_input(key="dpo_own_rejected").set_value(rejected).run()

    return act


def empty_multiselect(key: str):
    def act(at, ctx):
        at.multiselect(key=key).set_value([]).run()

    return act


def rl_wrong_presenter_token(at, ctx):
    """The server has a presenter token; an attendee types a wrong one (emoji and SQL included)."""
    ctx.monkeypatch.setenv(votes.PRESENTER_TOKEN_ENV, "room-42")
    at.run()
    at.text_input(key="rl_crowd_token").set_value("🎉' OR 1=1 -- " + "x" * 5000).run()
    assert not any(b.key == "rl_crowd_clear" for b in at.button)  # no presenter controls for a wrong token


def rl_extreme_beta(at, ctx):
    """β = 0.001 from the URL: exp(r/β) would overflow without log-sum-exp."""
    data = instant(at, "rl_sweep_live")
    assert data["controls"][0]["value"] == 0.001
    cands = data["candidates"]  # what the browser's π* is computed from: finite, and π* from it too
    log_star = rlhf.log_kl_regularized_policy(np.array(cands["ref_logprobs"]), np.array(cands["proxy"]), 0.001)
    assert np.isfinite(log_star).all() and np.exp(log_star).sum() == pytest.approx(1)


# Runs ----------------------------------------------------------------------------------------------------------


def pt_start(at: AppTest) -> None:
    at.button(key="pt_live_start").click().run()
    assert_clean(at)


def stopped(at: AppTest) -> bool:
    return "Stopped after" in notices(at)


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


def pt_two_tabs_reset(at, ctx):
    """Tab B of the same browser session sees tab A's run and resets it while it runs; then A's Stop, pressed
    before A redrew, arrives for a run that is gone (a Stop with no run: Stop before Start, as the server sees it)."""
    pt_start(at)
    b = open_page("pt")
    shown = page_text(b)
    assert "Running" in shown or "Waiting for a free training slot" in shown  # one registry: B shows A's run ...
    b.button(key="pt_live_reset").click().run()  # ... and B resets it
    ctx.started[0].join(timeout=30)
    assert ctx.started[0].status == "stopped"  # Reset stopped the run, it did not just hide it
    press_anyway(at, "pt_live_stop")  # A still showed Stop enabled
    assert_clean(b)
    return at


def pt_start_in_two_tabs_stop_twice(at, ctx):
    """Both tabs of one session press Start: the second (stale) click must not start a second, unstoppable run.
    Then Stop is pressed twice (a double click: the second press arrives after the button was disabled)."""
    b = open_page("pt")  # drawn before A starts: its Start is enabled
    pt_start(at)
    press_anyway(b, "pt_live_start")
    assert_clean(b)
    assert len(ctx.started) == 1, f"{len(ctx.started)} runs started; the first is no longer in the registry"
    at.button(key="pt_live_stop").click().run()
    poll(at, stopped)
    assert at.button(key="pt_live_stop").disabled
    press_anyway(at, "pt_live_stop")
    return at


def sft_diverge(at, ctx):
    """Opened with ?sft_live_lr=100&sft_live_steps=5: the loss is NaN by step 2."""
    at.button(key="sft_live_start").click().run()
    poll(at, lambda at: bool(at.error) or "Finished" in notices(at))
    assert at.button(key="sft_live_start").disabled is False  # ready for the next run


def rl_reward_model_diverges(at, ctx):
    """Opened with ?rl_rm_lr=10&rl_rm_steps=10: the reward model's loss is NaN by step 5."""
    at.button(key="rl_rm_start").click().run()
    poll(at, lambda at: bool(at.error) or "Finished" in notices(at))
    assert "run failed: nothing kept" in at.get("graphviz_chart")[0].proto.spec  # the pipeline says so too


def pt_diverge(at, ctx):
    """Opened with ?pt_live_lr=1&pt_live_steps=10: a learning rate the slider offers, 250x the default."""
    pt_start(at)
    poll(at, lambda at: bool(at.error) or "Finished" in notices(at))
    losses = array(chart(at, "pt_live_loss")["data"][0]["y"])
    assert losses[-1] > 2 * math.log(1118), losses  # it did diverge: twice a uniform guess's loss, ln V


def dpo_diverge(at, ctx):
    original = dpo.dpo_config

    def exploding(settings, output_dir, device):
        config = original(settings, output_dir, device)
        config.learning_rate = 1e3  # beyond the slider: NaN weights within two steps
        return config

    ctx.monkeypatch.setattr(dpo, "dpo_config", exploding)
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
    url("pt", "url-top-k-huge", {"pt_top_k": "99999999999"}, "'pt_top_k' was above its range: set to 10000000"),
    url("pt", "url-steps-overflow", {"pt_live_steps": "1e999"}, "'pt_live_steps=1e999' is not a valid value"),
    url("pt", "url-batch-not-a-choice", {"pt_live_batch": "7"}, "'pt_live_batch=7' is not one of the options"),
    url("pt", "url-kind-script", {"pt_dq_kind": SCRIPT}, "is not one of the options"),
    url("pt", "url-huge-value", {"pt_ch_n": "9" * 100_000}, f"'pt_ch_n={'9' * 40}' is not a valid value"),
    url("pt", "url-emoji-rtl", {"pt_ch_d": "🎉\u200fשלום"}, "is not a valid value: using 100.0"),
    url("pt", "url-presenter-maybe", {"presenter": "maybe"}, "'presenter=maybe' is not a valid value"),
    url("sft", "url-steps-zero", {"sft_live_steps": "0"}, "'sft_live_steps' was below its range: set to 5"),
    url("sft", "url-example-unknown", {"sft_mask_example": "🎉"}, "'sft_mask_example=🎉' is not one of the options"),
    url("rl", "url-beta-1e999", {"rl_sweep_beta": "1e999"}, "'rl_sweep_beta=1e999' is not a valid value"),
    url("rl", "url-lr-emoji", {"rl_online_lr": "🎉"}, "'rl_online_lr=🎉' is not a valid value"),
    url("rl", "url-compare-garbage", {"rl_online_compare": "-1,0,abc"}, "'rl_online_compare': ignored -1, abc"),
    url(
        "rl",
        "url-untrained-reward-model",
        {"rl_sweep_reward": "your reward model (tab 1)"},
        "'rl_sweep_reward",
    ),
    url(
        "rl",
        "url-identical-candidates",
        {"rl_sweep_k": "4", "rl_sweep_temperature": "0.7", "rl_sweep_rewrites": "0"},
        "All K samples are the same answer",
    ),
    url(
        "rl",
        "url-beta-extreme-0.001",
        {"rl_sweep_beta": "0.001"},
        "E[reward-model score] goes",
        where="page",
        act=rl_extreme_beta,
    ),
    url("dpo", "url-beta-1e999", {"dpo_beta": "1e999"}, "'dpo_beta=1e999' is not a valid value: using 0.1"),
    url("dpo", "url-beta-between-choices", {"dpo_beta": "0.042"}, "'dpo_beta=0.042' is not one of the options"),
    url("dpo", "url-loss-betas-garbage", {"dpo_loss_betas": "0.1,abc,1e999"}, "'dpo_loss_betas': ignored abc, inf"),
    url("dpo", "url-sweep-betas-none-valid", {"dpo_sweep_betas": ",,abc"}, "Pick at least one β to sweep"),
    # Text boxes and pickers: empty, huge, odd unicode and markup (shown as text, never as HTML).
    Case("pt", "prompt-blank", "The prompt is empty", act=pt_prompt(" \n\t ")),
    Case("pt", "prompt-10k-chars", "longer than the model's context", act=pt_prompt("The capital " * 850)),
    Case(
        "pt", "prompt-script-odd-unicode", "tokens; the small number", act=pt_prompt(f"Hi {SCRIPT} {ODD}"), where="page"
    ),
    Case("pt", "model-unknown-id", "Could not load 'no-such-org/model-404'", act=pick_model("no-such-org/model-404")),
    Case(
        "pt",
        "model-folder-config-is-a-list",
        "Could not load",
        act=pick_model_folder({"config.json": "[]"}),
    ),
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
    ),
    Case("rl", "presenter-token-wrong", "Wrong presenter token", act=rl_wrong_presenter_token),
    Case("rl", "typed-answer-script-odd", "Correct? A: no", act=rl_answers(f"{SCRIPT} {ODD}", "Paris."), where="page"),
    Case("dpo", "pair-identical", "identical", act=dpo_own_pair("Where is Peru?", "In Peru.", "In Peru.")),
    Case("dpo", "pair-answer-blank", "An answer is empty", act=dpo_own_pair("Where is Peru?", " ", "Rome.")),
    Case(
        "dpo", "pair-script-odd", "Paris \\<script\\>", act=dpo_own_pair(ODD, f"Paris {SCRIPT}", "Rome."), where="page"
    ),
    Case("dpo", "loss-no-beta", "No β picked to compare", act=empty_multiselect("dpo_loss_betas")),
    # Stop / Reset races, closing a tab mid-run, two tabs of one session.
    Case(
        "pt", "two-tabs-reset-while-running-then-stale-stop", IDLE, query=LONG_RUN, act=pt_two_tabs_reset, where="page"
    ),
    Case(
        "pt",
        "two-tabs-both-press-start-then-stop-twice",
        "Stopped after",
        LONG_RUN,
        act=pt_start_in_two_tabs_stop_twice,
    ),
    Case("pt", "reset-this-page-while-running", IDLE, query=LONG_RUN, act=pt_reset_page_while_running, where="page"),
    Case("pt", "close-tab-mid-run", IDLE, query=LONG_RUN, act=pt_close_tab_mid_run, where="page"),
    # A learning rate that makes the loss NaN: the run stops with a message.
    Case(
        "sft",
        "learning-rate-nan",
        "learning rate is too high",
        {"sft_live_lr": "100", "sft_live_steps": "5"},
        act=sft_diverge,
    ),
    Case("dpo", "learning-rate-nan", "learning rate is too high", {"dpo_steps": "10"}, act=dpo_diverge),
    Case(
        "rl",
        "reward-model-learning-rate-nan",
        "learning rate is too high",
        {"rl_rm_lr": "10", "rl_rm_steps": "10"},
        act=rl_reward_model_diverges,
    ),
    Case(
        "pt",
        "learning-rate-diverges",
        "learning rate",  # any message that names the cause
        {"pt_live_lr": "1", "pt_live_steps": "10", "pt_live_batch": "4"},
        act=pt_diverge,
    ),
]


def _params():
    for case in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=f"BUG: {case.bug}")] if case.bug else []
        yield pytest.param(case, id=f"{case.page}-{case.did}", marks=marks)


@pytest.mark.parametrize("case", _params())
def test_bad_input_ends_with_a_clear_message_and_a_working_page(
    case, session, released, started, monkeypatch, tmp_path
):
    at = open_page(case.page, case.query)
    if case.act is not None:
        at = case.act(at, Ctx(session, started, monkeypatch, tmp_path)) or at
    assert_clean(at)  # (a)
    shown = notices(at) if case.where == "notice" else page_text(at)
    assert case.expect in shown, shown[:2000]  # (b)
    WORKS[case.page](at)  # (c)


def test_the_table_covers_every_page_and_at_least_30_cases():
    assert len(CASES) >= 30
    assert {c.page for c in CASES} == set(PAGES)
    assert len({(c.page, c.did) for c in CASES}) == len(CASES)  # readable, unique ids
