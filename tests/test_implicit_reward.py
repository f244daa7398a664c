"""DPO's implicit reward β·log π/π_ref against the bundled reward model (llmlab/implicit_reward.py), and its
section in the DPO page's "DPO vs RLHF" tab."""

import math

import numpy as np
import pytest
import torch

from llmlab import dpo, implicit_reward, preferences, reward
from llmlab.modeling import load_model
from tests import conftest
from tests.conftest import chart, locked
from tests.test_pages import array


@pytest.fixture(scope="module")
def models():
    policy = locked(load_model, "tiny-dpo", "cpu")
    reference = locked(load_model, "tiny-sft", "cpu")
    rm = reward.load_or_train_reward_model(reference, reward.RewardRunConfig())  # the bundled one: loaded, not trained
    return policy, reference, rm


@pytest.fixture(scope="module")
def report(models):
    policy, reference, rm = models
    held_out = {split: preferences.preference_pairs(seed=0, split=split) for split in ("test", "unseen")}
    return implicit_reward.compare(
        policy.model, reference.model, reference.tokenizer, rm.model, held_out, implicit_reward.trained_beta()
    )


def test_tiny_dpo_was_trained_at_the_beta_its_history_names():
    assert implicit_reward.trained_beta() == 0.1


def test_the_implicit_reward_agrees_with_the_reward_model_more_often_than_chance(report):
    """The effect on the bundled models: tiny-dpo's implicit reward and the reward model, trained separately on the
    same pairs, rank held-out answers alike (measured: r 0.24, ρ 0.23, agreement 65% over 321 pairs)."""
    assert report.n_pairs == len(preferences.preference_pairs(split="test")) + len(
        preferences.preference_pairs(split="unseen")
    )
    assert report.pearson > 0.1 and report.spearman > 0.1
    assert report.pearson_within > report.pearson  # taking out each question's β·log Z(x) helps
    assert report.agreement > 0.55
    assert report.implicit_accuracy > 0.6 and report.rm_accuracy > 0.6  # both beat chance on the labels
    assert {a.split for a in report.answers} == {"test", "unseen"}
    rows = report.split_rows()
    assert [r["pairs"] for r in rows] == [265, 56, 321]


def test_the_implicit_reward_is_beta_times_the_log_ratio_computed_directly(models, report):
    policy, reference, _ = models
    pair = preferences.preference_pairs(split="test")[0]
    tokenized = dpo.tokenize_pair(reference.tokenizer, pair)
    for answer_ids, scored in ((tokenized.chosen_ids, report.answers[0]), (tokenized.rejected_ids, report.answers[1])):
        ids = torch.tensor([tokenized.prompt_ids + answer_ids])
        logps = []
        for model in (policy.model, reference.model):
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            start = len(tokenized.prompt_ids) - 1
            targets = ids[0, 1:]
            logps.append(float(logits[start:].gather(-1, targets[start:, None]).sum()))
        assert scored.logp_policy == pytest.approx(logps[0], abs=1e-4)
        assert scored.logp_reference == pytest.approx(logps[1], abs=1e-4)
        assert scored.implicit == pytest.approx(0.1 * (logps[0] - logps[1]), abs=1e-5)
    assert report.answers[0].chosen and not report.answers[1].chosen
    assert report.answers[0].answer == pair["chosen"] and report.answers[1].answer == pair["rejected"]


def test_the_reward_model_column_is_the_reward_models_score(models, report):
    _, reference, rm = models
    pair = preferences.preference_pairs(split="test")[0]
    [chosen, rejected] = reward.score(
        rm.model, reference.tokenizer, [pair["prompt"]] * 2, [pair["chosen"], pair["rejected"]]
    )
    assert report.answers[0].rm == pytest.approx(float(chosen)) and report.answers[1].rm == pytest.approx(
        float(rejected)
    )


def test_correlations_and_ranks_match_their_definitions():
    assert implicit_reward.ranks([3.0, 1.0, 2.0, 1.0]) == [4.0, 1.5, 3.0, 1.5]
    assert implicit_reward.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert implicit_reward.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(implicit_reward.pearson([1, 1, 1], [1, 2, 3]))
    assert implicit_reward.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear
    x, y = [0.3, -1.2, 2.5, 0.3, 4.0, -0.7], [1.0, 0.2, 0.9, -0.4, 3.3, 0.0]
    assert implicit_reward.pearson(x, y) == pytest.approx(float(np.corrcoef(x, y)[0, 1]))
    # Spearman's ρ as scipy.stats.spearmanr gives it for these numbers (a tie in x: average ranks)
    assert implicit_reward.spearman(x, y) == pytest.approx(0.6087595874350709)
    assert implicit_reward.least_squares([0, 1, 2], [1, 3, 5]) == pytest.approx((2.0, 1.0))


def test_the_scatter_has_titles_and_one_dot_per_answer(report):
    fig = implicit_reward.scatter_figure(report, "title").to_plotly_json()
    assert fig["layout"]["xaxis"]["title"]["text"] and "β = 0.1" in fig["layout"]["yaxis"]["title"]["text"]
    dots = [t for t in fig["data"] if t["mode"] == "markers"]
    assert sum(len(t["x"]) for t in dots) == len(report.answers)


def test_the_dpo_vs_rlhf_tab_shows_the_implicit_reward_against_the_reward_model(session, report):
    at = conftest.open_page("pages/4_DPO.py", {"tab_dpo": "DPO vs RLHF"}, timeout_s=180)
    fig = chart(at, "dpo_ir_scatter")
    dots = {t["name"]: t for t in fig["data"] if t["mode"] == "markers"}
    chosen = [a for a in report.answers if a.chosen]
    assert array(dots["chosen answers"]["x"]) == pytest.approx([a.rm for a in chosen], abs=1e-4)
    assert array(dots["chosen answers"]["y"]) == pytest.approx([a.implicit for a in chosen], abs=1e-4)
    assert f"r = {report.pearson:.2f}" in fig["layout"]["title"]["text"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pairwise agreement"] == f"{report.agreement:.0%}"
    assert metrics["Pearson r"] == f"{report.pearson:.2f}" and metrics["Spearman ρ"] == f"{report.spearman:.2f}"
    table = next(d.value for d in at.dataframe if "pairwise agreement" in d.value.columns)
    assert list(table["pairs"]) == [265, 56, 321]
    assert not at.exception


@pytest.mark.slow
def test_the_section_can_read_the_sessions_live_dpo_run_instead(session):
    from tests.test_page_dpo import wait_for

    at = conftest.open_page("pages/4_DPO.py", {"tab_dpo": "DPO vs RLHF", "dpo_steps": "10"}, timeout_s=180)
    assert "dpo_ir_policy" not in [w.key for w in at.radio]  # offered once a live run has finished
    at.button(key="dpo_live_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished"
    at.run()
    at.radio(key="dpo_ir_policy").set_value("live").run()
    assert "π = your Live DPO run (β = 0.1, 10 steps)" in conftest.texts(at)
    fig = chart(at, "dpo_ir_scatter")
    assert sum(len(array(t["x"])) for t in fig["data"] if t["mode"] == "markers") == 2 * 321
    assert not at.exception
