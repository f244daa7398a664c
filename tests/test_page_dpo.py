"""AppTest of the DPO page: the loss chart, the β slider and the URL, a short live run, Stop, NaN, two sessions.

Each test gets its own session id (the `session` fixture), because AppTest otherwise reuses one id and the
session-scoped run registry would carry jobs from one test into the next.
"""

import html
import math
import time

import pytest
from streamlit.testing.v1 import AppTest

from llmlab import dpo
from tests import conftest
from tests.conftest import ROOT, chart, has_chart, instant, set_in_browser, texts  # noqa: F401  (re-exported for other tests)
from tests.test_pages import array

PAGE = "pages/4_DPO.py"


def open_page(query: dict[str, str] | None = None) -> AppTest:
    return conftest.open_page(PAGE, query, timeout_s=180)


def table(at: AppTest, column: str):
    """The first st.dataframe with this column (AppTest does not expose a read-only table's key)."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with column {column!r}")


def wait_for(at: AppTest, words: tuple[str, ...], timeout_s: float = 600) -> str:
    """Rerun until one of `words` shows in the page (AppTest never fires the live fragment's timer)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        shown = texts(at)
        for word in words:
            if word in shown:
                return word
        time.sleep(0.5)
    raise AssertionError(f"none of {words} appeared within {timeout_s} s")


def test_loss_chart_gets_the_betas_to_compare_and_the_slider_beta(session):
    """The loss and gradient-weight curves are drawn in the browser (ui/instant.py; math.js is checked against
    llmlab.dpo in tests/test_browser.py): the page sends the margins, the β values to compare and the slider."""
    at = open_page()
    data = instant(at, "dpo_loss_live")
    assert data["betas"] == [0.5, 1.0]
    margins = array(data["margins"])
    assert margins[0] == -20 and margins[-1] == 20 and len(margins) == 161
    slider = data["controls"][0]
    assert (slider["key"], slider["value"], slider["kind"]) == ("dpo_loss_beta", 0.1, "choice")
    assert slider["choices"] == list(dpo.LOSS_BETAS) and min(dpo.LOSS_BETAS) == 0.01 and max(dpo.LOSS_BETAS) == 10

    at.multiselect(key="dpo_loss_betas").set_value([0.01, 1.0]).run()
    set_in_browser(at, "dpo_loss_beta", 2.0)  # the end of a drag on the browser's slider
    at.run()
    assert not at.exception
    data = instant(at, "dpo_loss_live")
    assert data["betas"] == [0.01, 1.0] and data["controls"][0]["value"] == 2.0
    assert at.query_params["dpo_loss_beta"] == "2" and at.query_params["dpo_loss_betas"] == "0.01,1"


def test_beta_slider_sets_the_url_and_the_example_pair(session):
    at = open_page()
    assert at.query_params["dpo_beta"] == "0.1"
    at.select_slider(key="dpo_beta").set_value(0.5).run()
    assert not at.exception
    assert at.query_params["dpo_beta"] == "0.5"
    assert "β = 0.5" in texts(at)  # the implicit-reward example uses the slider's β before any run


@pytest.mark.parametrize(
    "raw, message",
    [
        ("0", "is not one of the options"),  # β = 0 teaches nothing: not a value the slider offers
        ("-0.5", "is not one of the options"),
        ("nan", "is not a valid value"),
        ("abc", "is not a valid value"),
    ],
)
def test_a_beta_that_is_not_positive_in_the_url_gives_a_message_and_the_default(session, raw, message):
    at = open_page({"dpo_beta": raw})
    assert at.select_slider(key="dpo_beta").value == 0.1
    toasts = " ".join(t.value for t in at.toast)  # the settings form's one kind of notice (ui/settings.py)
    assert f"'dpo_beta={raw}' {message}: using 0.1." in toasts
    assert at.query_params["dpo_beta"] == "0.1"  # the URL now holds the value in force


def test_a_negative_beta_in_session_state_is_repaired_not_a_traceback(session):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.switch_page(PAGE)
    at.session_state["dpo_beta"] = -1.0
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.select_slider(key="dpo_beta").value == 0.1  # a kept value that is not valid goes back to the default
    assert "β = 0.1" in texts(at)  # and the implicit-reward example uses it


@pytest.mark.parametrize(
    "prompt, chosen, rejected, message",
    [
        ("Where is Peru?", "In South America.", "In South America.", "identical"),
        ("   ", "Paris.", "Rome.", "prompt is empty"),
        ("What is 🎉 the capital of France?", "Paris <script>alert(1)</script>", "Rome.", None),
        ("🎉" * 100, "Paris.", "Rome.", "at most"),
    ],
)
def test_own_pair_bad_input_gives_a_message(session, prompt, chosen, rejected, message):
    at = open_page()
    at.selectbox(key="dpo_loss_example").select("Write your own pair…").run()
    at.text_input(key="dpo_own_prompt").input(prompt)
    at.text_input(key="dpo_own_chosen").input(chosen)
    at.text_input(key="dpo_own_rejected").input(rejected).run()
    assert not at.exception, [e.message for e in at.exception]
    if message:
        assert message in " ".join(i.value for i in at.info)
    else:
        numbers = table(at, "quantity").set_index("quantity")
        assert numbers.loc["implicit reward β·Δ"].tolist() == [0.0, 0.0]  # no run yet: policy = reference
        assert numbers.loc["log π (nats)"].tolist() == numbers.loc["log π_ref (nats)"].tolist()
        assert "Paris \\<script\\>alert(1)\\</script\\>" in texts(at)  # markdown-escaped: shown as text


def test_short_live_run_draws_trls_metrics_and_before_after_answers(session):
    at = open_page()
    at.slider(key="dpo_steps").set_value(10)
    at.select_slider(key="dpo_nll").set_value(0.0).run()  # plain DPO: trl's loss is the DPO loss alone
    at.button(key="dpo_live_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished", texts(at)
    # The run may have ended between the loss tab (drawn first) and the live tab of that script run; the
    # browser then gets one full rerun from the live view (ui/runs.py), so does this test.
    at.run()
    fig = chart(at, "dpo_live_chart")
    loss = next(t for t in fig["data"] if t["name"] == "loss")
    assert array(loss["x"]) == list(range(1, 11))
    assert all(math.isfinite(v) for v in array(loss["y"]))
    assert math.isclose(array(loss["y"])[0], math.log(2), rel_tol=1e-4)  # step 1: policy = reference
    answers = table(at, "after DPO")
    assert list(answers.columns) == ["question", "before (start model)", "after DPO"] and len(answers) == 6
    assert "the policy of your live run" in texts(at)  # and the implicit-reward example uses its policy
    assert at.get("download_button")  # trl's per-step metrics as CSV (the run panel)
    (download,) = conftest.model_downloads(at)  # and the policy as a Hugging Face folder
    assert "llmlab-dpo-tiny-sft-" in download


def test_stop_mid_run_keeps_the_steps_so_far(session):
    at = open_page()
    at.slider(key="dpo_steps").set_value(300).run()
    at.button(key="dpo_live_start").click().run()
    wait_for(at, ("Step ",), timeout_s=300)
    at.button(key="dpo_live_stop").click().run()
    assert wait_for(at, ("Stopped", "Finished")) == "Stopped"
    assert chart(at, "dpo_live_chart")["data"]
    assert not at.exception


def test_a_diverging_run_ends_with_a_message_not_a_traceback(session, monkeypatch):
    original = dpo.dpo_config

    def exploding(settings, output_dir, device):
        config = original(settings, output_dir, device)
        config.learning_rate = 1e3  # far beyond the slider: the weights become NaN within two steps
        return config

    monkeypatch.setattr(dpo, "dpo_config", exploding)
    at = open_page()
    at.slider(key="dpo_steps").set_value(10).run()
    at.button(key="dpo_live_start").click().run()
    assert wait_for(at, ("Finished", "too high")) == "too high"
    assert "NaN" in " ".join(e.value for e in at.error)


def test_two_sessions_have_their_own_runs(session):
    first_id = session["id"]
    first = open_page()
    first.slider(key="dpo_steps").set_value(300).run()
    first.button(key="dpo_live_start").click().run()
    session["id"] = f"{first_id}-second-tab"
    second = open_page()
    assert second.button(key="dpo_live_stop").disabled  # nothing runs in this tab
    assert "Start trains a copy" in texts(second)
    session["id"] = first_id
    first.button(key="dpo_live_stop").click().run()
    assert wait_for(first, ("Stopped", "Finished")) == "Stopped"


def test_sweep_plots_accuracy_and_kl_per_beta_and_exports_csv(session):
    at = open_page()
    at.multiselect(key="dpo_sweep_betas").set_value([0.1]).run()
    at.slider(key="dpo_sweep_steps").set_value(20).run()
    at.button(key="dpo_sweep_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished", texts(at)
    fig = chart(at, "dpo_sweep_chart")
    accuracy, kl = fig["data"][0], fig["data"][1]
    assert array(accuracy["x"]) == [0.1] and array(kl["x"]) == [0.1]
    kept = table(at, "KL (nats)")
    assert kept["β"].tolist() == [0.1] and kept["steps"].tolist() == [20]
    assert kept["KL (nats)"].tolist() == [round(array(kl["y"])[0], 3)]
    right, length = chart(at, "dpo_sweep_right")["data"], chart(at, "dpo_sweep_length")["data"]
    assert [t["name"] for t in right] == ["start model", "after DPO"] == [t["name"] for t in length]
    assert f"{array(right[1]['y'])[0]:.0%}" == kept["right answers"].tolist()[0]  # sampled, beside the ranking
    assert round(array(length[1]["y"])[0], 1) == kept["answer length (tokens)"].tolist()[0]
    assert (
        10.0 in at.multiselect(key="dpo_sweep_betas").options or "10" in at.multiselect(key="dpo_sweep_betas").options
    )
    assert any(b.proto.label == "Download as CSV" for b in at.get("download_button"))
    frontier = chart(at, "dpo_frontier_chart")["data"]  # the DPO vs RLHF tab now has this policy
    dpo_trace = next(t for t in frontier if t["name"] == "DPO")
    assert array(dpo_trace["x"]) == array(kl["y"])


def test_offline_limit_scores_every_kind_of_question_after_training_on_one(session):
    at = open_page()
    at.slider(key="dpo_steps").set_value(10).run()
    at.multiselect(key="dpo_cover_kinds").set_value(["capital"]).run()
    at.button(key="dpo_cover_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished", texts(at)
    bars = chart(at, "dpo_offline_chart")["data"]
    kinds = [x.replace("<br>", " ") for x in bars[0]["x"]]  # wrapped over lines: plots.wrapped_label
    assert sorted(kinds) == ["capital (covered)", "continent (not covered)", "language (not covered)"]
    ranked = next(b for b in bars if b["name"] == "pairs ranked right after DPO")
    assert all(0.0 <= v <= 1.0 for v in array(ranked["y"]))
    assert len(table(at, "KL to the reference (nats)")) == 3


def test_what_goes_wrong_runs_four_dpo_runs_and_charts_right_answers_before_and_after(session):
    at = open_page({"dpo_steps": "10"})
    assert "Four DPO runs from tiny-sft" in texts(at)
    at.button(key="dpo_diag_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished", texts(at)
    at.run()
    fig = chart(at, "dpo_diag_chart")
    assert [t["name"] for t in fig["data"]] == ["tiny-sft (start)", "after DPO"]
    assert [html.unescape(x.replace("<br>", " ")) for x in fig["data"][0]["x"]] == [  # escaped, wrapped labels
        "hand-written pairs, plain DPO",
        "hand-written pairs, + NLL ×1",
        "tiny-sft's own answers, plain DPO",
        "tiny-sft's own answers, + NLL ×1",
    ]
    runs = table(at, "log π(chosen), its pairs (nats)")
    assert len(runs) == 4 and all("→" in cell for cell in runs["right answers"])
