"""llmlab.dpo, llmlab.policy_eval and llmlab.dpo_experiments: our displayed numbers equal trl's, KL equals a
direct computation, β limits drift, DPO learns; the DPO page's tables and chart points built from results.

Runs are short (tens of steps on a few dozen pairs) so the file stays fast on 2 shared cores; the speed
targets live in bench/bench_dpo.py.
"""

import copy
import csv
import io
import math
import tempfile
import time

import pytest
import torch
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback
from trl import DPOTrainer

from llmlab import dpo, dpo_experiments, nexttoken, policy_eval, preferences
from llmlab.jobs import Job, overshooting
from llmlab.modeling import bundled_models, load_model

START = "tiny-sft" if "tiny-sft" in bundled_models() else "tiny-base"


@pytest.fixture(scope="module")
def start():
    return load_model(START, "cpu")


@pytest.fixture(scope="module")
def train_pairs():
    return preferences.preference_pairs(seed=0, split="train")


@pytest.fixture(scope="module")
def heldout_pairs():
    return preferences.preference_pairs(seed=0, split="test")


# -- the loss and its gradient ---------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.01, 0.1, 1.0])
def test_gradient_weight_is_the_derivative_of_the_loss(beta):
    margin = torch.linspace(-50, 50, 101, dtype=torch.float64, requires_grad=True)
    loss = dpo.dpo_loss(margin, beta)
    (grad,) = torch.autograd.grad(loss.sum(), margin)
    torch.testing.assert_close(grad, -beta * dpo.dpo_gradient_weight(margin.detach(), beta))
    assert math.isclose(float(dpo.dpo_loss(torch.tensor(0.0), beta)), math.log(2), rel_tol=1e-6)


def test_loss_curves_hold_the_formula_for_each_beta():
    curves = dpo.loss_curves([0.1, 1.0], margin_range=(-10, 10), n=21)
    assert [c.beta for c in curves] == [0.1, 1.0]
    for curve in curves:
        for m, loss, weight in zip(curve.margins, curve.loss, curve.gradient_weight, strict=True):
            assert math.isclose(loss, -math.log(1 / (1 + math.exp(-curve.beta * m))), rel_tol=1e-5)
            assert math.isclose(weight, 1 / (1 + math.exp(curve.beta * m)), rel_tol=1e-5)
    # a larger β saturates sooner: at margin 10 it pushes far less
    assert curves[1].gradient_weight[-1] < curves[0].gradient_weight[-1] / 10


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0, 0.0, -0.1, -1, float("nan"), float("inf")])
def test_settings_refuse_a_beta_that_is_not_positive(beta):
    with pytest.raises(dpo.SettingsError, match="β must be a positive number"):
        dpo.DPOSettings(beta=beta)


@pytest.mark.parametrize("lr", [0, -1e-3, float("nan")])
def test_settings_refuse_a_learning_rate_that_is_not_positive(lr):
    with pytest.raises(dpo.SettingsError, match="learning rate"):
        dpo.DPOSettings(learning_rate=lr)


def test_a_sweep_with_a_zero_beta_is_refused_before_any_training(start, train_pairs, heldout_pairs):
    with pytest.raises(dpo.SettingsError, match="β must be a positive number"):
        dpo_experiments.sweep_work(start, train_pairs, heldout_pairs, dpo.DPOSettings(), betas=(0.1, 0.0))


@pytest.mark.parametrize(
    "pair, message",
    [
        ({"prompt": "<|user|>Where is Peru?<|assistant|>", "chosen": "In Asia.", "rejected": "In Asia."}, "identical"),
        ({"prompt": "<|user|><|assistant|>", "chosen": "Paris.", "rejected": "Rome."}, "prompt is empty"),
        ({"prompt": "<|user|>   <|assistant|>", "chosen": "Paris.", "rejected": "Rome."}, "prompt is empty"),
        ({"prompt": "<|user|>Where is Peru?<|assistant|>", "chosen": "", "rejected": "In Asia."}, "answer is empty"),
        (
            {"prompt": "<|user|>" + "Peru? " * 100 + "<|assistant|>", "chosen": "Asia.", "rejected": "Europe."},
            "at most",
        ),
    ],
)
def test_pairs_that_teach_nothing_are_refused_with_a_reason(start, pair, message):
    with pytest.raises(dpo.PairError, match=message):
        dpo.score_pairs(start.model, start.model, start.tokenizer, [pair])
    if message != "at most":  # trl itself truncates long pairs; the page refuses them before training
        with pytest.raises(dpo.PairError, match=message):
            dpo.train_dpo(start, [pair], dpo.DPOSettings(steps=1))


# -- our numbers equal trl's and direct computations -------------------------------------------------------


def test_displayed_loss_and_rewards_equal_trls_logged_values_for_the_same_batch(start, train_pairs):
    """Policy tiny-sft and reference tiny-base differ, so every margin is non-zero (a real check, not log 2)."""
    reference = load_model("tiny-base", "cpu")
    batch = train_pairs[::26]  # 9 pairs: tiny-sft's own answers, right and wrong
    logged = []

    class Capture(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs))

    settings = dpo.DPOSettings(beta=0.1, steps=1, batch_size=len(batch), learning_rate=1e-4, chosen_nll=0.5)
    with tempfile.TemporaryDirectory() as out:
        trainer = DPOTrainer(
            model=copy.deepcopy(start.model).requires_grad_(True).train(),
            ref_model=copy.deepcopy(reference.model),
            args=dpo.dpo_config(settings, out, "cpu"),
            train_dataset=Dataset.from_list(batch),
            processing_class=start.tokenizer,
            callbacks=[Capture()],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    scores = dpo.score_pairs(start.model, reference.model, start.tokenizer, batch)
    ours = dpo.batch_metrics(scores, settings.beta, settings.chosen_nll)  # the loss with trl's "sft" term too
    trl_step = logged[0]
    assert abs(ours["rewards/margins"]) > 0.1
    for key in dpo.LOG_KEYS:
        assert math.isclose(ours[key], trl_step[key], rel_tol=1e-4, abs_tol=1e-4), (key, ours[key], trl_step[key])


def test_reused_reference_logps_equal_trls_own_precompute_and_are_kept(start, train_pairs):
    """The reference log-probs our trainer hands trl (length-sorted batches, kept per start model and pair set)
    are the ones trl's own precompute gives, and a second run on the same pairs reuses them."""
    pairs = train_pairs[::6]  # 35 pairs of answers of different lengths
    reference = copy.deepcopy(start.model)
    with tempfile.TemporaryDirectory() as out:
        trainer = DPOTrainer(  # trl's own precompute_ref_log_probs (dpo_config turns it on)
            model=copy.deepcopy(start.model).requires_grad_(True).train(),
            ref_model=reference,
            args=dpo.dpo_config(dpo.DPOSettings(steps=1), out, "cpu"),
            train_dataset=Dataset.from_list(pairs),
            processing_class=start.tokenizer,
        )
    trls = (
        torch.tensor(trainer.train_dataset["ref_chosen_logps"]),
        torch.tensor(trainer.train_dataset["ref_rejected_logps"]),
    )
    ours = dpo.reference_logps(start, reference, pairs)
    assert torch.allclose(torch.tensor(ours[0]), trls[0], atol=1e-3)
    assert torch.allclose(torch.tensor(ours[1]), trls[1], atol=1e-3)
    assert dpo.reference_logps(start, reference, pairs) is ours  # kept: not computed again
    assert dpo.reference_logps(start, reference, pairs[:-1]) is not ours  # another pair set: its own


def test_batched_sampler_is_greedy_decoding_when_greedy(start):
    prompts = [
        "<|user|>What is the capital of France?<|assistant|>",
        "<|user|>Which language do people speak in the Netherlands?<|assistant|>",
        "<|user|>Where is Peru?<|assistant|>",
    ]
    ids = [start.tokenizer(p)["input_ids"] for p in prompts]  # different lengths: left padding is exercised
    answers = nexttoken.sample_answers(start.model, start.tokenizer, ids, max_new_tokens=16, greedy=True)
    for prompt, answer in zip(prompts, answers, strict=True):
        expected = nexttoken.greedy_continuation(start.model, start.tokenizer, prompt, 16)
        assert start.tokenizer.decode(answer, skip_special_tokens=True) == expected


def test_kl_equals_a_direct_sum_over_the_vocabulary(start):
    reference = load_model("tiny-base", "cpu")
    prompt = start.tokenizer("<|user|>Where is Peru?<|assistant|>")["input_ids"]
    [answer] = nexttoken.sample_answers(start.model, start.tokenizer, [prompt], max_new_tokens=8, seed=3)
    [kl] = policy_eval.per_token_kl(start.model, reference.model, [prompt], [answer], start.tokenizer.pad_token_id)
    direct = 0.0
    for t in range(len(answer)):
        context = prompt + answer[:t]
        p = torch.softmax(nexttoken.next_token_logits(start.model, context).double(), -1)
        q = torch.softmax(nexttoken.next_token_logits(reference.model, context).double(), -1)
        direct += float((p * (p.log() - q.log())).sum())
    assert math.isclose(float(kl), direct, rel_tol=1e-3)
    assert float(kl) > 0.1
    [same] = policy_eval.per_token_kl(start.model, start.model, [prompt], [answer], start.tokenizer.pad_token_id)
    assert abs(float(same)) < 1e-5


def test_longer_preference_counts_which_answer_the_implicit_reward_favours():
    pairs = [
        {"prompt": "q", "chosen": "a much longer answer", "rejected": "short"},
        {"prompt": "q", "chosen": "short", "rejected": "a much longer answer"},
        {"prompt": "q", "chosen": "same", "rejected": "SAME"},  # equal length: skipped
    ]
    favours_chosen = dpo.PairScore(-1.0, -5.0, -2.0, -2.0)  # margin +4
    favours_rejected = dpo.PairScore(-5.0, -1.0, -2.0, -2.0)  # margin -4
    assert dpo_experiments.longer_preference([favours_chosen, favours_rejected, favours_chosen], pairs) == 1.0
    assert dpo_experiments.longer_preference([favours_rejected, favours_chosen, favours_chosen], pairs) == 0.0
    assert dpo_experiments.longer_preference([favours_chosen, favours_chosen, favours_rejected], pairs) == 0.5


def sweep_point(beta: float = 0.1, kl: float = 1.2, reward: float | None = 0.8, train_s: float = 3.0):
    return dpo_experiments.SweepPoint(
        beta,
        10,
        5e-4,
        0,
        0.6,
        0.5,
        kl,
        reward,
        0.75,
        0.6,
        -20.0,
        -22.0,
        train_s,
        4.0,
        length=7.06,
        reference_length=6.1,
    )


def test_sweep_csv_has_one_row_per_point():
    point = sweep_point()
    rows = list(csv.DictReader(io.StringIO(dpo_experiments.sweep_csv([point, point]))))
    assert len(rows) == 2 and float(rows[0]["beta"]) == 0.1 and float(rows[0]["kl"]) == 1.2


def test_sweep_rows_format_each_point_for_reading():
    [row, no_reward] = dpo_experiments.sweep_rows([sweep_point(kl=1.23456), sweep_point(reward=None)])
    assert row == {
        "β": 0.1,
        "steps": 10,
        "lr": 5e-4,
        "held-out accuracy": "60%",
        "KL (nats)": 1.235,
        "right answers": "80%",
        "answer length (tokens)": 7.1,
        "log π(chosen) start → end": "-20.0 → -22.0",
        "train s": 3.0,
    }
    assert no_reward["right answers"] == ""  # a sweep without a reward function scores no answers


def test_the_overshoot_threshold_is_twice_the_starting_loss():
    assert math.isclose(dpo.OVERSHOOT_LOSS, 2 * float(dpo.dpo_loss(torch.tensor(0.0), 0.1)), rel_tol=1e-6)
    start = math.log(2)  # every margin 0: the loss of step 1
    assert not overshooting([start] * 10, dpo.OVERSHOOT_LOSS)
    assert not overshooting([start, 5.0, 5.0, 5.0], dpo.OVERSHOOT_LOSS)  # too few steps to tell
    assert overshooting([start] * 5 + [1.6] * 5, dpo.OVERSHOOT_LOSS)


def test_question_kind_names_the_kind_of_each_preference_pair(train_pairs):
    kinds = {dpo_experiments.question_kind(p) for p in train_pairs}
    assert kinds == set(preferences.KINDS)
    capital = next(p for p in train_pairs if "capital" in p["prompt"])
    assert dpo_experiments.question_kind(capital) == "capital"
    assert dpo_experiments.question_kind({"prompt": preferences.chat_prompt("Who are you?")}) == "other"


def frontier_point(method: str, beta: float, kl: float, reward: float | None, extra_s: float = 0.0, models: int = 3):
    return dpo_experiments.FrontierPoint(method, beta, kl, reward, 0.4, 6.0, extra_s, models)


def live_summary(beta: float, kl: float, reward: float | None, train_s: float):
    return dpo_experiments.LiveSummary(beta, 50, 2e-4, kl, reward, 0.45, train_s, train_s + 2)


def test_the_frontier_has_every_scored_policy_and_the_start_model():
    policies = dpo_experiments.Policies(
        sweep=[sweep_point(0.1, kl=1.0, reward=0.8), sweep_point(0.5, kl=0.3, reward=None)],
        live=[live_summary(0.2, kl=0.7, reward=0.9, train_s=5.0)],
        rlhf=[frontier_point("RLHF (reward model + RLOO)", 0.01, 2.0, 0.6)],
        rlhf_page=[frontier_point("RL on the true reward (RLOO)", 0.1, 0.5, 0.95)],
    )
    assert policies.chart_points("tiny-sft") == [
        ("DPO", "β=0.1", 1.0, 0.8),  # the sweep's β = 0.5 sampled no answers: not on the chart
        ("DPO", "β=0.2 (live)", 0.7, 0.9),
        ("RLHF (reward model + RLOO)", "β=0.01", 2.0, 0.6),
        ("RL on the true reward (RLOO), RLHF page", "β=0.1", 0.5, 0.95),
        ("tiny-sft (start)", "start", 0.0, 0.75),  # the start model's reward, at KL 0
    ]
    assert dpo_experiments.Policies().chart_points("tiny-sft") == []  # no policy: no chart, not a lone start point
    unscored = dpo_experiments.Policies(sweep=[sweep_point(reward=None)])
    assert unscored.chart_points("tiny-sft") == []


def test_the_cost_table_has_wall_time_per_policy_and_models_in_memory():
    policies = dpo_experiments.Policies(
        sweep=[sweep_point(0.1, train_s=3.0), sweep_point(0.5, train_s=5.0)],
        live=[live_summary(0.1, 0.5, 0.9, train_s=7.0)],
        rlhf=[
            frontier_point("RLHF (reward model + RLOO)", 0.1, 1.0, 0.7, extra_s=9.5),
            frontier_point("RLHF (reward model + RLOO)", 0.0, 1.0, 0.7, extra_s=9.5, models=2),
        ],
        rlhf_page=[frontier_point("RL on the true reward (RLOO)", 0.1, 1.0, 0.7, models=2)],
    )
    dpo_row, rlhf_row, page_row = policies.cost_rows()
    assert dpo_row["method"] == "DPO (trl DPOTrainer)" and dpo_row["policies"] == 3
    assert dpo_row["training per policy (s)"] == 5.0  # (3 + 5 + 7) / 3
    assert dpo_row["models in memory while training"] == f"{dpo.DPO_MODELS_IN_MEMORY}: policy + frozen reference"
    assert rlhf_row["policies"] == 2 and rlhf_row["training per policy (s)"] == 6.0
    assert rlhf_row["needed first (s)"] == "reward model: 9.5"
    assert rlhf_row["models in memory while training"] == "2 (β = 0), 3 (β = 0.1)"
    assert page_row["method"] == "RL on the true reward (RLOO) (trl)"
    assert page_row["needed first (s)"] == "see the RLHF page"
    assert dpo_experiments.Policies().cost_rows() == []


# -- training --------------------------------------------------------------------------------------------


def test_trained_policy_changes_every_parameter_and_the_shared_model_stays_frozen(start, train_pairs):
    before = {n: p.clone() for n, p in start.model.named_parameters()}
    run = dpo.train_dpo(start, train_pairs[:16], dpo.DPOSettings(steps=3, batch_size=8, learning_rate=1e-3))
    assert run.steps_done == 3 and len(run.metrics) == 3
    for name, param in run.policy.named_parameters():
        assert not torch.equal(param, before[name]), name
        assert torch.equal(dict(start.model.named_parameters())[name], before[name])  # the shared model
    for name, param in run.reference.named_parameters():
        assert torch.equal(param, before[name])  # the reference is the start model, untouched


def test_a_diverging_run_fails_with_a_clear_message(start, train_pairs, heldout_pairs):
    settings = dpo.DPOSettings(steps=10, batch_size=8, learning_rate=1e3)  # valid, but far too large
    job = Job("dpo-nan", dpo_experiments.dpo_work(start, train_pairs[:16], heldout_pairs[:4], settings))
    job.start().join(timeout=300)
    assert job.status == "failed"
    assert "NaN" in job.error and "learning rate is too high" in job.error
    assert len(job.metrics) < 10  # it stopped at the step that broke, not after all ten


def test_stop_mid_run_keeps_the_steps_so_far_and_still_evaluates(start, train_pairs, heldout_pairs):
    settings = dpo.DPOSettings(steps=500, batch_size=8, learning_rate=1e-4)
    job = Job("dpo-stop", dpo_experiments.dpo_work(start, train_pairs, heldout_pairs[:8], settings))
    job.start()
    deadline = time.monotonic() + 300
    while len(job.snapshot()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    job.stop()
    job.join(timeout=300)
    assert job.status == "stopped"
    outcome = job.result
    assert 2 <= outcome.run.steps_done < 500
    assert len(outcome.run.metrics) == outcome.run.steps_done
    assert 0.0 <= outcome.heldout.accuracy_after <= 1.0 and outcome.heldout.accuracy_before == 0.5
    summary = outcome.summary()  # what the page keeps of the run: its numbers, not its models
    assert (summary.beta, summary.steps, summary.learning_rate) == (0.1, outcome.run.steps_done, 1e-4)
    assert (summary.kl, summary.train_s, summary.wall_s) == (outcome.heldout.kl, outcome.run.train_s, outcome.wall_s)


@pytest.fixture(scope="module")
def beta_runs(start, train_pairs, heldout_pairs):
    """The same 80 plain DPO steps (same seed, same pairs, same order; no NLL term, whose pull on the chosen
    answers β does not scale) at a small and a large β, scored on held-out pairs."""
    reports = {}
    for beta in (0.01, 1.0):
        run = dpo.train_dpo(start, train_pairs, dpo.DPOSettings(beta=beta, steps=80, seed=0, chosen_nll=0.0))
        reports[beta] = policy_eval.compare_on("held-out", run.policy, run.reference, start.tokenizer, heldout_pairs)
    return reports


def test_higher_beta_keeps_the_policy_closer_to_the_reference(beta_runs):
    assert beta_runs[1.0].kl < beta_runs[0.01].kl / 2
    assert beta_runs[1.0].kl > 0  # it did move


def test_a_dpo_run_raises_heldout_preference_accuracy(beta_runs):
    report = beta_runs[1.0]
    assert report.accuracy_before == 0.5  # the reference ties every pair with itself
    assert report.accuracy_after > 0.55


def test_an_online_rl_run_is_scored_on_the_same_axes_as_dpo(start, heldout_pairs):
    from llmlab.rlhf import RLRunConfig, run_rl

    run = run_rl(start, None, RLRunConfig(beta=0.1, max_steps=2, reward="correctness"))
    pairs = heldout_pairs[:16]
    point = dpo_experiments.rlhf_point(run, start, pairs, preferences.true_reward)
    direct = policy_eval.compare_on("x", run.policy, start.model, start.tokenizer, pairs, preferences.true_reward)
    assert (point.kl, point.reward, point.reference_reward) == (direct.kl, direct.reward_after, direct.reward_before)
    assert point.method == "RL on the true reward (RLOO)" and point.beta == 0.1
    assert point.models_in_memory == 2  # policy + reference; the true reward is a function, not a model
    assert (
        dpo_experiments.rlhf_models_in_memory(0.1, reward_model=True) == 3
        and dpo_experiments.rlhf_models_in_memory(0.0, False) == 1
    )


@pytest.mark.slow
def test_the_default_live_run_makes_the_model_more_correct(start, train_pairs, heldout_pairs):
    """Issue 19: on the shipped (on-policy) pairs with the page's defaults, DPO raises the share of right answers
    sampled for all 96 questions (85% -> 91-92% over seeds 0-2 in bench/bench_alignment.py), at modest KL."""
    job = Job("dpo", dpo_experiments.dpo_work(start, train_pairs, heldout_pairs, dpo.DPOSettings(),
                                              preferences.true_reward, asked=preferences.asked("test"))).start()  # fmt: skip
    job.join(timeout=300)
    assert job.status == "done", job.error
    report = job.result.heldout
    assert report.reward_after > report.reward_before + 0.02, (report.reward_before, report.reward_after)
    assert 0 < report.kl < 3


def test_the_diagnosis_runs_each_data_set_with_and_without_the_nll_term(start, train_pairs, heldout_pairs):
    datasets = {"hand-written": preferences.written_pairs(split="train")[:64], "own": train_pairs[:64]}
    settings = dpo.DPOSettings(steps=2, batch_size=4)
    job = Job("diagnosis", dpo_experiments.diagnosis_work(start, datasets, heldout_pairs[:8], settings,
                                                          preferences.true_reward, preferences.asked("test")[:8]))  # fmt: skip
    job.start().join(timeout=300)
    assert job.status == "done", job.error
    runs = job.notes_of(dpo_experiments.DiagnosisRun)
    assert [(r.pairs, r.chosen_nll) for r in runs] == [("hand-written", 0.0), ("hand-written", 1.0), ("own", 0.0),
                                                       ("own", 1.0)]  # fmt: skip
    assert len({r.reward_before for r in runs}) == 1  # the same start model, the same questions and samples
    assert all(r.logp_chosen[0] != r.logp_chosen[1] for r in runs)  # each trained its own policy
    own = next(r for r in runs if r.pairs == "own")
    written = next(r for r in runs if r.pairs == "hand-written")
    assert own.logp_chosen[0] > written.logp_chosen[0]  # the model's own answers are likelier to it


def test_the_nll_term_adds_the_chosen_answers_negative_log_likelihood(start, train_pairs):
    scores = dpo.score_pairs(start.model, start.model, start.tokenizer, train_pairs[:6])
    plain, with_nll = dpo.batch_metrics(scores, 0.1), dpo.batch_metrics(scores, 0.1, chosen_nll=2.0)
    per_token = -sum(s.policy_chosen for s in scores) / sum(s.chosen_tokens for s in scores)
    assert with_nll["loss"] == pytest.approx(plain["loss"] + 2.0 * per_token) and per_token > 0
    assert plain["loss"] == pytest.approx(math.log(2))  # policy = reference
    with pytest.raises(dpo.SettingsError, match="NLL"):
        dpo.DPOSettings(chosen_nll=-1.0)
