"""Chinchilla calculator: the numbers against the published formula and a brute-force optimum."""

import math

import numpy as np
import pytest

from llmlab import scaling
from llmlab.scaling import (
    OVERTRAINED,
    Q3_LARGE,
    Q3_SMALL,
    compute_for_loss,
    compute_optimal,
    format_count,
    iso_compute_curve,
    predicted_loss,
    rule_of_thumb,
    training_flops,
)


def hoffmann(n: float, d: float) -> float:
    """The fit as printed in Hoffmann et al. (2022), eq. 10 with the Approach 3 constants."""
    return 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28


@pytest.mark.parametrize("n, d", [(7e9, 100e9), (70e9, 10e9), (8e9, 15e12), (70e9, 1.4e12), (1e6, 1e6)])
def test_predicted_loss_is_the_published_formula(n, d):
    assert predicted_loss(n, d) == pytest.approx(hoffmann(n, d), rel=1e-12)


def test_q3_options_spend_the_same_compute_and_the_smaller_model_wins():
    assert training_flops(7e9, 100e9) == pytest.approx(4.2e21)
    assert Q3_SMALL.compute == pytest.approx(Q3_LARGE.compute)
    # 7B x 100B: 1.69 + 0.1827 + 0.3420; 70B x 10B: 1.69 + 0.0835 + 0.6515 (hand-checked to 3 decimals).
    assert Q3_SMALL.loss() == pytest.approx(2.215, abs=1e-3)
    assert Q3_LARGE.loss() == pytest.approx(2.425, abs=1e-3)
    assert Q3_SMALL.loss() < Q3_LARGE.loss()


def test_compute_optimal_is_the_minimum_of_the_iso_compute_curve():
    for compute in (1e18, Q3_SMALL.compute, OVERTRAINED.compute, 1e26):
        best = compute_optimal(compute)
        assert training_flops(best.n_params, best.n_tokens) == pytest.approx(compute)
        n, d, loss = iso_compute_curve(compute, np.logspace(3, 15, 24001))
        assert np.allclose(6 * n * d, compute)
        assert best.loss() <= loss.min() + 1e-9
        assert best.n_params == pytest.approx(n[loss.argmin()], rel=2e-3)


def test_compute_optimal_closed_form_values():
    # C/6 = 7e20; G = (0.34*406.4 / (0.28*410.7))^(1/0.62); N = G (C/6)^(0.28/0.62)
    g = (0.34 * 406.4 / (0.28 * 410.7)) ** (1 / 0.62)
    best = compute_optimal(4.2e21)
    assert best.n_params == pytest.approx(g * 7e20 ** (0.28 / 0.62))
    assert 3e9 < best.n_params < 4e9 and 45 < best.tokens_per_param < 70


def test_rule_of_thumb_uses_twenty_tokens_per_parameter():
    run = rule_of_thumb(5.76e23)  # Chinchilla's own budget: 70B params x 1.4T tokens
    assert run.tokens_per_param == pytest.approx(20)
    assert run.n_params == pytest.approx(math.sqrt(5.76e23 / 120))
    assert 65e9 < run.n_params < 72e9


def test_overtrained_model_costs_more_compute_than_the_optimum_for_its_loss():
    needed = compute_for_loss(OVERTRAINED.loss())
    assert compute_optimal(needed).loss() == pytest.approx(OVERTRAINED.loss(), abs=1e-9)
    assert needed < OVERTRAINED.compute
    assert compute_optimal(needed).n_params > OVERTRAINED.n_params  # the optimum is a bigger model


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_non_positive_inputs_are_refused(bad):
    with pytest.raises(ValueError):
        predicted_loss(bad, 1e9)
    with pytest.raises(ValueError):
        compute_optimal(bad)
    with pytest.raises(ValueError):
        compute_for_loss(scaling.CHINCHILLA.E)


def test_format_count():
    assert [format_count(x) for x in (7e9, 1.5e13, 950_000, 12)] == ["7B", "15T", "950K", "12"]


def test_the_demo_compares_the_users_run_with_q3_and_the_overtrained_model_without_repeats():
    mine = scaling.TrainingRun("your run", 35e9, 20e9)  # not a named run, but the same budget as Q3
    assert scaling.runs_to_show(scaling.TrainingRun("your run", 7e9, 100e9)) == scaling.NAMED_RUNS  # Q3's first
    assert scaling.runs_to_show(mine)[-1] is mine
    assert list(scaling.budgets(mine)) == ["your budget", "8B × 15T's budget"]  # Q3's budget is the same one
    rows = scaling.comparison_rows(mine)
    assert [r["run"] for r in rows] == [*(r.label for r in scaling.NAMED_RUNS), "your run"]
    assert rows[-1]["predicted loss"] == round(mine.loss(), 4) and rows[-1]["tokens per parameter"] == 0.6
    assert rows[-1]["optimum's loss at this C"] <= rows[-1]["predicted loss"]


def test_the_overtrained_models_compute_optimal_twin_reaches_its_loss_with_less_training():
    twin = scaling.overtrained_twin()
    assert twin.run.loss() == pytest.approx(scaling.OVERTRAINED.loss(), abs=1e-6)
    assert twin.training_saving > 1 and twin.serving_cost > 1  # cheaper to train, dearer to serve
