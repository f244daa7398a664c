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
from tests.conftest import ROOT, chart, has_chart, instant, set_in_browser, texts  # noqa: F401  (re-exported for other tests)
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


def payload_candidates(data: dict) -> rlhf.Candidates:
    """The candidates the page sent to the browser, as llmlab's type."""
    c = data["candidates"]
    n = len(c["texts"])
    return rlhf.Candidates(
        prompt="", texts=tuple(c["texts"]), counts=(1,) * n, ref_logprobs=np.array(c["ref_logprobs"]),
        proxy=np.array(c["proxy"]), true=np.array(c["true"]), lengths=np.array(c["lengths"]),
        stopped=(True,) * n, padding=np.array(c["padding"]),
    )  # fmt: skip


def test_pipeline_and_the_beta_sweep_send_the_browser_what_moves_pi_star(session):
    """The β slider redraws π* in the browser (ui/instant.py; its math is checked against llmlab in
    tests/test_browser.py). The page sends the scored candidates and the frontier; with them, β → ∞ gives π_ref
    and β → 0 all mass on the best-scored answer, and the frontier is llmlab's."""
    at = open_page()
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "SFT model" in dot and "Reward model" in dot and "RL policy" in dot and "tiny-sft" in dot

    data = instant(at, "rl_sweep_live")
    assert [(c["name"], c["value"]) for c in data["controls"]] == [("beta", 0.1)]
    assert data["controls"][0]["choices"] == list(rlhf.SWEEP_BETAS)
    cands = payload_candidates(data)
    assert len(cands.texts) >= 2 and np.isfinite(cands.ref_logprobs).all()
    large, small = rlhf.optimum_at(cands, 1000.0), rlhf.optimum_at(cands, 0.001)
    np.testing.assert_allclose(large.policy, cands.ref_policy, atol=0.01)  # β → ∞: π* = π_ref
    assert large.kl < 0.01 and small.policy.max() > 0.99 and np.isfinite(small.kl) and small.kl > large.kl
    assert small.policy.argmax() == cands.proxy.argmax()  # β → 0: the highest-scored answer
    curve = rlhf.frontier(cands, rlhf.beta_grid(121))
    assert data["frontier"]["kl"] == pytest.approx(curve.kl.tolist(), rel=1e-6, abs=1e-9)

    set_in_browser(at, "rl_sweep_beta", 0.001)  # the end of a drag in the browser
    at.run()
    assert not at.exception
    assert instant(at, "rl_sweep_live")["controls"][0]["value"] == 0.001
    assert at.query_params["rl_sweep_beta"] == "0.001"  # a shareable link


def test_bad_url_values_and_empty_answers_get_messages(session):
    at = open_page({"rl_sweep_beta": "abc", "rl_online_kl": "-3"})
    assert instant(at, "rl_sweep_live")["controls"][0]["value"] == 0.1
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
