"""AppTest of the pre-training page: explorer without re-running the model, live run, noise, Chinchilla.

Every AppTest shares one session id ("test session id"), so session-scoped run registries would leak between
tests; the `session` fixture gives each AppTest run the session id the test chooses, which also lets one test
play two browser tabs.
"""

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from llmlab import nexttoken, plots, scaling
from tests import conftest
from tests.conftest import ROOT, chart, has_chart, instant, set_in_browser, texts  # noqa: F401  (re-exported)
from tests.test_pages import array
from ui.models import shared_model

PAGE = "pages/1_Pretraining.py"


def open_page(query: dict[str, str] | None = None) -> AppTest:
    return conftest.open_page(PAGE, query, timeout_s=120)


# -- explorer -------------------------------------------------------------------------------------------


def test_the_browser_gets_the_logits_once_per_prompt_and_settings_cost_no_forward_pass(session, monkeypatch):
    """Temperature, top-k and top-p re-shape the prompt's logits in the browser (ui/instant.py); the page sends them
    with the explorer's controls, and a settings change (a drag's end) runs no model."""
    calls = []
    original = nexttoken.next_token_logits

    def counting(model, token_ids):
        calls.append(tuple(token_ids))
        return original(model, token_ids)

    monkeypatch.setattr(nexttoken, "next_token_logits", counting)
    at = open_page()
    calls.clear()  # the default prompt's forward (in a fresh process)
    prompt = f"The capital of Italy is {time.time_ns()}"
    at.text_area(key="pt_prompt").set_value(prompt).run()
    assert len(calls) == 1  # a new prompt: exactly one forward pass
    data = instant(at, "pt_next_token")
    model = shared_model("tiny-base", "cpu")
    expected = original(model.model, calls[0]).tolist()  # (not counted)
    assert data["logits"] == pytest.approx(expected, abs=1e-5) and len(data["logits"]) == len(model.tokenizer)
    assert [c["name"] for c in data["controls"]] == ["temperature", "top_k", "top_p", "shown"]
    top = max(range(len(expected)), key=expected.__getitem__)
    assert data["labels"][str(top)] == plots.token_text(nexttoken.readable_piece(model.tokenizer, top))

    set_in_browser(at, "pt_temperature", 0.3)
    set_in_browser(at, "pt_top_k", 3)
    at.run()
    assert not at.exception and len(calls) == 1  # the cached logits serve every setting
    controls = {c["name"]: c["value"] for c in instant(at, "pt_next_token")["controls"]}
    assert controls["temperature"] == 0.3 and controls["top_k"] == 3
    assert at.query_params["pt_temperature"] == "0.3" and at.query_params["pt_top_k"] == "3"  # a shareable link

    at.selectbox(key="model_picker_select").set_value("tiny-sft").run()  # a model change runs the model
    assert not at.exception and at.sidebar.markdown[0].value
    assert len(calls) == 2


def test_settings_come_from_the_url_clamped_with_a_notice(session):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(PAGE)
    at.query_params.update({"pt_temperature": "9", "pt_top_p": "abc", "pt_ch_n": "70", "pt_live_lr": "0.5"})
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    controls = {c["name"]: c["value"] for c in instant(at, "pt_next_token")["controls"]}
    assert controls["temperature"] == 5.0 and controls["top_p"] == 1.0  # clamped, and the default
    assert at.number_input(key="pt_ch_n").value == 70.0
    assert at.select_slider(key="pt_live_lr").value == 4e-3
    notices = " ".join(t.value for t in at.toast)  # one kind of notice on every page (ui/settings.py)
    assert "'pt_temperature' was above its range" in notices and "pt_live_lr=0.5" in notices


def test_append_and_sample_grow_the_text_and_highlight_the_chosen_token(session):
    at = open_page()
    at.button(key="pt_append").click().run()
    assert at.text_area(key="pt_prompt").value == "The capital of France is Paris"
    step = chart(at, "pt_last_step_chart")
    assert "Paris" in step["layout"]["title"]["text"]
    sampling = step["data"][-1]
    colors = sampling["marker"]["color"]
    assert colors[sampling["y"].index("&#x27; Paris&#x27;")] == plots.HIGHLIGHT
    assert colors.count(plots.HIGHLIGHT) == 1

    set_in_browser(at, "pt_temperature", 2.0)  # a drag's end in the browser
    at.run()
    at.button(key="pt_sample").click().run()
    grown = at.text_area(key="pt_prompt").value
    assert grown.startswith("The capital of France is Paris") and len(grown) > len("The capital of France is Paris")
    assert "the last 2 (orange) were appended" in texts(at)
    step = chart(at, "pt_last_step_chart")
    assert "sampled with T = 2" in step["layout"]["title"]["text"]
    assert step["data"][-1]["marker"]["color"].count(plots.HIGHLIGHT) == 1


# -- watch it learn --------------------------------------------------------------------------------------


def poll_until(at: AppTest, done, timeout: float = 120.0, every: float = 1.0) -> None:
    """Rerun the page until `done(at)`; each rerun competes with the run's thread, so not too often."""
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(every)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def loss_points(at: AppTest) -> list[float]:
    return array(chart(at, "pt_live_loss")["data"][0]["y"]) if has_chart(at, "pt_live_loss") else []


def live_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "llmlab-pretrain-live"]


def test_start_poll_stop_leaves_a_decreasing_loss_history(session):
    at = open_page()
    at.select_slider(key="pt_live_batch").set_value(8).run()
    at.button(key="pt_live_start").click().run()
    assert not at.exception
    poll_until(at, lambda at: len(loss_points(at)) >= 25)
    at.button(key="pt_live_stop").click().run()
    assert "Stopped after" in texts(at)
    losses = loss_points(at)
    assert len(losses) >= 25
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # it learned
    fig = chart(at, "pt_live_loss")
    ln_v = [s for s in fig["layout"]["shapes"] if s["type"] == "line"][0]
    assert ln_v["y0"] == pytest.approx(7.019, abs=1e-3)  # ln(1118), the uniform guess
    probe = chart(at, "pt_live_probe_chart")
    assert "The capital of France is" in probe["layout"]["title"]["text"]
    assert "Greedy samples at step" in texts(at)
    (download,) = conftest.model_downloads(at)  # a stopped run's model too, as a Hugging Face folder
    assert "llmlab-pretraining-tiny-base-" in download
    # A second Stop cannot happen (the button is disabled once the run is over); Reset empties the panel.
    assert at.button(key="pt_live_stop").disabled and not at.button(key="pt_live_start").disabled
    at.button(key="pt_live_reset").click().run()
    assert not has_chart(at, "pt_live_loss") and "Start pre-trains a fresh" in texts(at)


def test_reset_while_running_and_two_sessions_keep_their_own_runs(session):
    session["id"] = "tab-a"
    a = open_page()
    a.select_slider(key="pt_live_batch").set_value(4).run()
    a.button(key="pt_live_start").click().run()
    session["id"] = "tab-b"
    b = open_page()
    assert "Start pre-trains a fresh" in texts(b)  # tab A's run does not show in tab B
    b.select_slider(key="pt_live_batch").set_value(4).run()
    b.button(key="pt_live_start").click().run()
    poll_until(b, lambda at: len(loss_points(at)) >= 3)
    assert len(live_threads()) >= 2

    session["id"] = "tab-a"
    a.button(key="pt_live_reset").click().run()  # Reset while running
    assert not a.exception and "Start pre-trains a fresh" in texts(a)
    session["id"] = "tab-b"
    b.run()
    assert "Running" in texts(b) and not has_chart(a, "pt_live_loss")
    b.button(key="pt_live_stop").click().run()
    assert "Stopped after" in texts(b)
    deadline = time.monotonic() + 30
    while live_threads() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not live_threads()  # nothing keeps training in the background


def test_empty_probe_prompt_falls_back_with_a_message(session):
    at = open_page()
    at.text_input(key="pt_live_probe").input("   ").run()
    assert not at.exception
    assert "The run will probe 'The capital of France is' instead" in texts(at)


# -- timeline, data quality, Chinchilla ------------------------------------------------------------------


def test_timeline_slider_shows_that_step(session):
    at = open_page()
    at.select_slider(key="pt_timeline_step").set_value(50).run()
    title = chart(at, "pt_timeline_dist")["layout"]["title"]["text"]
    assert "step 50 " in title and "102,400 tokens" in title
    lines = chart(at, "pt_timeline_lines")
    assert "&#x27; Paris&#x27;" in [trace["name"] for trace in lines["data"]]


def test_data_quality_shows_the_precomputed_view_at_once(session):
    from llmlab import dataquality

    at = open_page()
    loss = chart(at, "pt_dq_loss")
    p = chart(at, "pt_dq_p")
    saved = dataquality.load_saved_runs()
    losses = saved.spread("random_capital", "clean_loss")
    assert array(loss["data"][0]["x"]) == pytest.approx([100 * r.noise for r in losses])
    assert array(loss["data"][0]["y"]) == pytest.approx([r.mean for r in losses])  # the mean over the saved seeds
    assert array(loss["data"][0]["error_y"]["array"]) == pytest.approx([r.high - r.mean for r in losses])
    assert array(p["data"][0]["y"]) == pytest.approx([r.mean for r in saved.spread("random_capital", "p_correct")])
    beliefs = chart(at, "pt_dq_beliefs")  # both fact corruptions, whatever the selectbox says
    lines = {t["name"]: array(t["y"]) for t in beliefs["data"]}
    assert lines["the repeated lie · same lie repeated"] == pytest.approx(
        [r.mean for r in saved.spread("repeated_lie", "p_lie")]
    )
    assert lines["most likely wrong capital · random noise"] == pytest.approx(
        [r.mean for r in saved.spread("random_capital", "p_top_wrong")]
    )
    assert "At 30% corrupted documents" in texts(at) and "the repeated lie is" in texts(at)
    at.selectbox(key="pt_dq_kind").set_value("shuffled_words").run()
    shuffled = saved.spread("shuffled_words", "clean_loss")
    assert array(chart(at, "pt_dq_loss")["data"][0]["y"]) == pytest.approx([r.mean for r in shuffled])


def test_chinchilla_numbers_match_the_formula(session):
    at = open_page()
    at.number_input(key="pt_ch_n").set_value(70.0)
    at.number_input(key="pt_ch_d").set_value(10.0).run()
    metrics = {m.label: m.value for m in at.metric}
    expected = 1.69 + 406.4 / 70e9**0.34 + 410.7 / 10e9**0.28
    assert metrics["Predicted loss"] == f"{expected:.3f}"
    assert metrics["Compute C = 6ND (FLOPs)"] == f"{6 * 70e9 * 10e9:.2e}"
    assert metrics["Tokens per parameter"] == "0.1"
    best = scaling.compute_optimal(4.2e21)
    assert metrics["Best loss for this C"] == f"{best.loss():.3f}"

    iso = chart(at, "pt_ch_iso")
    points = {t["name"]: (t["x"][0], t["y"][0]) for t in iso["data"] if t["mode"] == "markers+text"}
    stars = next(t for t in iso["data"] if t["name"] == "compute-optimal point of each curve")
    assert array(stars["x"])[0] == pytest.approx(best.n_params) and array(stars["y"])[0] == pytest.approx(best.loss())
    for run in (scaling.Q3_SMALL, scaling.Q3_LARGE, scaling.OVERTRAINED):
        n, loss = points[run.label]
        assert n == pytest.approx(run.n_params)
        assert loss == pytest.approx(1.69 + 406.4 / run.n_params**0.34 + 410.7 / run.n_tokens**0.28)
    curve = next(t for t in iso["data"] if t["name"].startswith("your budget"))
    n, losses = array(curve["x"]), array(curve["y"])
    assert losses == pytest.approx([1.69 + 406.4 / x**0.34 + 410.7 / (4.2e21 / (6 * x)) ** 0.28 for x in n])

    at.radio(key="pt_ch_mode").set_value("a compute budget and parameters").run()
    at.slider(key="pt_ch_c").set_value(23.0).run()
    metrics = {m.label: m.value for m in at.metric}
    d = 1e23 / (6 * 70e9)
    assert metrics["Predicted loss"] == f"{1.69 + 406.4 / 70e9**0.34 + 410.7 / d**0.28:.3f}"
    assert not at.exception


def test_data_quality_live_rerun_adds_its_runs_to_the_chart(session):
    at = open_page()
    at.selectbox(key="pt_dq_kind").set_value("shuffled_words")
    at.slider(key="pt_dq_noise").set_value(0.05)  # clean and 5%: two short runs
    at.number_input(key="pt_dq_steps").set_value(20).run()
    assert "0%, 5% noise" in at.button(key="pt_dq_start").label
    at.button(key="pt_dq_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at), timeout=300, every=3.0)
    table = next(d.value for d in at.dataframe if "noise" in d.value.columns)  # (dataframe protos carry no key)
    assert list(table["noise"]) == ["0%", "5%"]
    live = next(t for t in chart(at, "pt_dq_loss")["data"] if t["name"].startswith("your live run"))
    assert array(live["x"]) == pytest.approx([0, 5])
    assert array(live["y"]) == pytest.approx(list(table["clean-text loss (nats/token)"]), abs=1e-3)
    runs = chart(at, "pt_dq_live_loss")
    assert [t["name"] for t in runs["data"]] == ["0% noise", "5% noise"]
    assert all(len(array(t["y"])) == 20 for t in runs["data"])
