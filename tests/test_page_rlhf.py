"""AppTest of the RLHF page: the pipeline, the instant β slider, a short reward-model run, a short online-RL
run with two KL coefficients side by side, Stop, two sessions, and bad input.

The server's default reward models are trained on first use (then cached on disk); here they are trained
for a few steps only, since their quality is tested in tests/test_rlhf.py and the page only needs one.
"""

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from llmlab import rlhf
from llmlab.preferences import preference_pairs
from tests import conftest
from tests.conftest import ROOT, chart, has_chart, texts  # noqa: F401  (re-exported for other tests)
from tests.test_pages import array

PAGE = "pages/3_RLHF.py"


def open_page(query: dict[str, str] | None = None) -> AppTest:
    return conftest.open_page(PAGE, query, timeout_s=300)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def poll_until(at: AppTest, done, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def test_pipeline_and_beta_slider_move_pi_star_between_pi_ref_and_the_best_answer(session):
    at = open_page()
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "SFT model" in dot and "Reward model" in dot and "RL policy" in dot and "tiny-sft" in dot

    at.select_slider(key="rl_sweep_beta").set_value(1000.0).run()
    bars = chart(at, "rl_sweep_bars")["data"]
    ref, star = array(bars[0]["x"]), array(bars[1]["x"])
    np.testing.assert_allclose(star, ref, atol=0.01)  # β → ∞: π* = π_ref
    kl_large_beta = float(metric(at, "KL (nats)"))
    assert kl_large_beta < 0.01

    at.select_slider(key="rl_sweep_beta").set_value(0.001).run()
    assert not at.exception
    star = array(chart(at, "rl_sweep_bars")["data"][1]["x"])
    assert max(star) > 0.99  # β → 0: all mass on the highest-reward answer
    kl_small_beta = float(metric(at, "KL (nats)"))
    assert np.isfinite(kl_small_beta) and kl_small_beta > kl_large_beta
    frontier = chart(at, "rl_sweep_frontier")["data"]
    marker = next(t for t in frontier if t["name"] == "current β (proxy)")
    assert array(marker["x"])[0] == pytest.approx(kl_small_beta, rel=5e-3)  # the current β is marked (3 digits)
    assert at.query_params["rl_sweep_beta"] == "0.001"  # a shareable link


def test_bad_url_values_and_empty_answers_get_messages(session):
    at = open_page({"rl_sweep_beta": "abc", "rl_online_kl": "-3"})
    assert at.select_slider(key="rl_sweep_beta").value == 0.1
    assert at.select_slider(key="rl_online_kl").value == rlhf.RLRunConfig().beta
    notices = " ".join(t.value for t in at.toast)
    assert "rl_sweep_beta=abc" in notices and "rl_online_kl=-3" in notices
    at.text_area(key="rl_score_a").set_value("   ").run()
    assert not at.exception
    assert "Type both answers" in texts(at)
    at.text_area(key="rl_score_a").set_value("Thank you! " * 40 + "Paris.").run()  # longer than the context
    assert not at.exception and at.dataframe


def test_reward_model_run_shows_trl_loss_accuracy_and_histogram(session):
    at = open_page()
    at.slider(key="rl_rm_steps").set_value(10).run()
    at.button(key="rl_rm_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at))
    loss = chart(at, "rl_rm_loss_chart")["data"][0]
    assert len(array(loss["y"])) == 10 and all(np.isfinite(array(loss["y"])))
    hist = chart(at, "rl_rm_histogram")["data"]
    assert {t["name"] for t in hist} == {"chosen answers", "rejected answers"}
    assert len(array(hist[0]["x"])) == len(preference_pairs(0, False, "test"))  # every held-out pair scored
    assert "Held-out accuracy (its own labels)" in [m.label for m in at.metric]
    # the trained model becomes a choice for the sweep and for RL, and the pipeline says so
    assert "your reward model (tab 1)" in at.radio(key="rl_sweep_reward").options
    assert "held-out accuracy" in at.get("graphviz_chart")[0].proto.spec
    at.button(key="rl_rm_reset").click().run()  # Reset forgets it: the pipeline and the choices say so
    assert not at.exception, [e.message for e in at.exception]
    assert "not trained in this session" in at.get("graphviz_chart")[0].proto.spec
    assert "your reward model (tab 1)" not in at.radio(key="rl_sweep_reward").options


def test_online_rl_runs_two_kl_values_side_by_side_then_stop_mid_run(session):
    at = open_page()
    at.radio(key="rl_online_reward").set_value("correctness (verifiable, no reward model)")
    at.select_slider(key="rl_online_kl").set_value(0.5)
    at.multiselect(key="rl_online_compare").set_value([0.0])
    at.slider(key="rl_online_steps").set_value(5).run()
    at.button(key="rl_online_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at))
    kl = chart(at, "rl_online_kl_chart")["data"]
    assert [t["name"] for t in kl] == ["β = 0.5", "β = 0"]
    assert all(len(array(t["y"])) == 5 for t in kl)
    table = next(d.value for d in at.dataframe if "KL (nats/answer)" in d.value.columns)
    assert list(table["β"]) == ["0.5", "0"]
    assert any("Sampled answers at checkpoints" in m.value for m in at.markdown)

    at.slider(key="rl_online_steps").set_value(200).run()
    at.button(key="rl_online_start").click().run()
    poll_until(at, lambda at: has_chart(at, "rl_online_kl_chart"))
    at.button(key="rl_online_stop").click().run()
    poll_until(at, lambda at: "Stopped after" in texts(at))
    steps = array(chart(at, "rl_online_kl_chart")["data"][0]["x"])
    assert 0 < len(steps) < 200
    assert len(chart(at, "rl_online_kl_chart")["data"]) == 1  # the second β was skipped


def test_two_sessions_keep_their_own_runs(session):
    session["id"] = "rl-tab-a"
    a = open_page()
    a.radio(key="rl_online_reward").set_value("correctness (verifiable, no reward model)")
    a.multiselect(key="rl_online_compare").set_value([])
    a.slider(key="rl_online_steps").set_value(100).run()
    a.button(key="rl_online_start").click().run()
    session["id"] = "rl-tab-b"
    b = open_page()
    assert "Press Start RL" in texts(b) and not has_chart(b, "rl_online_kl_chart")
    session["id"] = "rl-tab-a"
    a.button(key="rl_online_stop").click().run()
    poll_until(a, lambda at: "Stopped after" in texts(at) or "Finished in" in texts(at))
