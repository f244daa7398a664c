"""AppTest of the RLHF page: the pipeline, the instant β slider, a short reward-model run, a short online-RL
run with two KL coefficients side by side, Stop, two sessions, and bad input.

The server's default reward models are trained on first use (then cached on disk); here they are trained
for a few steps only, since their quality is tested in tests/test_rlhf.py and the page only needs one.
"""

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from llmlab import reward, rlhf
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
    (download,) = conftest.model_downloads(at)
    assert "llmlab-reward-tiny-sft-" in download and "AutoModelForSequenceClassification" in download
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


def test_after_the_runs_each_policy_answers_the_held_out_questions(session):
    """With a reward model, the SFT model and each trained policy answer the held-out questions: the bars are
    the table's means, and the answers are shown side by side."""
    at = open_page()
    assert at.radio(key="rl_online_reward").value == "reward model trained on biased pairs (longer wins)"
    at.multiselect(key="rl_online_compare").set_value([0.0])
    at.slider(key="rl_online_steps").set_value(5).run()
    at.button(key="rl_online_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at))
    score, correct = chart(at, "rl_online_held_score")["data"][0], chart(at, "rl_online_held_correct")["data"][0]
    summary = next(d.value for d in at.dataframe if "reward-model score" in d.value.columns)
    assert list(summary["policy"]) == ["tiny-sft", "β = 1", "β = 0"] == [x.replace("<br>", " ") for x in score["x"]]
    assert np.allclose(array(score["y"]), summary["reward-model score"], atol=0.006)
    assert [f"{v:.0%}" for v in array(correct["y"])] == list(summary["correct"])
    side = next(d.value for d in at.dataframe if "β = 0: answer" in d.value.columns)
    assert len(side) == 12 and {"tiny-sft: answer", "β = 1: score", "β = 0: correct"} <= set(side.columns)
    downloads = conftest.model_downloads(at)  # each policy, as a Hugging Face folder
    assert len(downloads) == 2 and all("llmlab-rl-tiny-sft-" in d for d in downloads)


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


OVEROPT_TAB = "5 · Over-optimisation (best-of-n)"


def test_over_optimisation_draws_llmlabs_best_of_n_curve_then_adds_the_sessions_rl_steps(session):
    """Best-of-n against √KL with the paper's fit (the chart's points are llmlab.overopt's curve for the same
    pool); once this session has run online RL against the same reward model, its steps join the charts."""
    from llmlab import overopt
    from llmlab.modeling import load_model

    at = open_page({"tab_rlhf": OVEROPT_TAB, "rl_overopt_questions": "12"})
    true = chart(at, "rl_overopt_true")["data"]
    assert [t["name"] for t in true][:2] == ["best-of-n", "fit d(α − βd)"]
    sft = load_model("tiny-sft")
    rm = reward.load_or_train_reward_model(sft, reward.RewardRunConfig(biased=False))
    curve = overopt.best_of_n_curve(overopt.sample_pool(sft, rm.model, overopt.default_questions(12)))
    np.testing.assert_allclose(array(true[0]["x"]), curve.d)
    np.testing.assert_allclose(array(true[0]["y"]), curve.true)
    np.testing.assert_allclose(array(chart(at, "rl_overopt_proxy")["data"][0]["y"]), curve.proxy, rtol=1e-5)
    assert overopt.summary(curve, overopt.fit_bon(curve.d, curve.true)) in texts(at)
    assert "Run online RL (tab 3) with this reward model" in texts(at)

    at.radio(key="rl_overopt_reward").set_value("reward model trained on unbiased pairs").run()
    at.radio(key="rl_online_reward").set_value("reward model trained on unbiased pairs")
    at.multiselect(key="rl_online_compare").set_value([])
    at.slider(key="rl_online_steps").set_value(5).run()
    at.button(key="rl_online_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at))
    names = [t["name"] for t in chart(at, "rl_overopt_true")["data"]]
    assert "online RL, β = 1" in names
    rl = next(t for t in chart(at, "rl_overopt_true")["data"] if t["name"] == "online RL, β = 1")
    assert array(rl["x"])[0] == 0 and len(array(rl["x"])) == 2  # the start policy, then steps 2-5 in one point
