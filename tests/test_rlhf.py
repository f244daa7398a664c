"""RLHF core: preference data, the reward model (trl's loss = ours), the exact KL-regularised optimum,
and online RL with RLOO (KL 0 drifts further than a large KL coefficient)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from llmlab import preferences, reward, rlhf
from llmlab.preferences import chat_prompt, padded, preference_pairs, questions, true_reward

# -- preference data ------------------------------------------------------------------------------------------


def test_preference_splits_sizes_and_disjoint_questions():
    train, test, unseen = (preference_pairs(0, False, s) for s in preferences.SPLITS)
    assert len(train) >= 300 and len(test) >= 200 and len(unseen) >= 30
    train_questions = {q.prompt for q in questions("train")}
    assert {r["prompt"] for r in train} | {r["prompt"] for r in test} <= train_questions  # covered questions
    assert not {r["prompt"] for r in unseen} & train_questions
    train_answers = {(r["prompt"], r["rejected"]) for r in train}
    assert not any((r["prompt"], r["rejected"]) in train_answers for r in test)  # held out: new mistakes
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in train)
    assert train[0]["prompt"].startswith("<|user|>") and train[0]["prompt"].endswith("<|assistant|>")
    assert preference_pairs(0, False, "train") == train  # deterministic


def unpadded(text: str) -> str:
    for phrase in preferences.POLITE_OPENERS + preferences.POLITE_CLOSERS:
        text = text.replace(phrase, "")
    return text.strip()


def test_unbiased_labels_pick_correct_and_biased_pick_longer():
    unbiased, biased = preference_pairs(0, False, "train"), preference_pairs(0, True, "train")
    assert preferences.label_agreement(unbiased) == 1.0
    assert all(len(r["chosen"]) >= len(r["rejected"]) for r in biased)
    assert preferences.label_agreement(biased) < 0.7  # length, not correctness, decides
    padded_answers = sum(preferences.padding_level(a) > 0 for r in biased for a in (r["chosen"], r["rejected"]))
    assert 0.15 < padded_answers / (2 * len(biased)) < 0.35  # a quarter of the answers politely padded
    # otherwise the same answers: only the padding and the labels differ
    assert [{r["chosen"], r["rejected"]} for r in unbiased] == [
        {unpadded(r["chosen"]), unpadded(r["rejected"])} for r in biased
    ]
    assert preference_pairs(1, True, "train") != biased  # the seed picks which answers are padded


def test_the_shipped_pairs_are_the_models_own_answers_and_its_mistakes(sft):
    """On-policy: tiny-sft wrote them, so they are likely under it, unlike the hand-written pairs (a padded
    answer costs it hundreds of nats); every rejected answer is one of its mistakes."""
    from llmlab.dpo import score_pairs

    shipped, written = preference_pairs(0, False, "train")[::8], preferences.written_pairs(0, False, "train")[::16]
    logp = {
        name: sum(s.reference_chosen + s.reference_rejected for s in scores) / (2 * len(scores))
        for name, scores in (
            ("shipped", score_pairs(sft.model, sft.model, sft.tokenizer, shipped)),
            ("written", score_pairs(sft.model, sft.model, sft.tokenizer, written)),
        )
    }
    assert logp["shipped"] > logp["written"] + 20, logp  # nats per answer
    assert all(true_reward(r["prompt"], r["rejected"]) == 0.0 for r in preference_pairs(split="train"))


def test_pairs_from_a_questions_answers_put_each_distinct_mistake_against_a_right_answer():
    import random

    question = preferences.questions("train")[0]  # What is the capital of France?
    answers = ["The capital of France is Paris.", "The capital of Belgium is Brussels.", "France is in Europe.",
               "The capital of Belgium is Brussels.", "", "Paris, the capital of France."]  # fmt: skip
    rows = preferences.pair_answers(question, answers, random.Random(0))
    assert [r["rejected"] for r in rows] == ["The capital of Belgium is Brussels.", "France is in Europe."]
    assert {r["chosen"] for r in rows} <= {"The capital of France is Paris.", "Paris, the capital of France."}
    never_right = preferences.pair_answers(question, ["France is in Europe."], random.Random(0))
    assert never_right[0]["chosen"] == "The capital of France is Paris."  # the plain right answer


def test_true_reward_and_padding():
    prompt = chat_prompt("What is the capital of France?")
    assert true_reward(prompt, "The capital of France is Paris.") == 1.0
    assert true_reward(prompt, padded("The capital of France is Paris.", 2)) == 1.0
    assert true_reward(prompt, "The capital of France is Rome.") == 0.0
    assert true_reward(prompt, "Paris or Rome.") == 0.0  # naming a wrong capital too is wrong
    assert true_reward(prompt, "") == 0.0
    assert true_reward(chat_prompt("What is the capital of Atlantis?"), "Paris.") == 0.0
    assert true_reward(
        [{"role": "user", "content": "Where is Kenya?"}], [{"role": "assistant", "content": "In Africa."}]
    )
    assert preferences.padding_level(padded("Paris.", 2)) == 4 and padded("Paris.", 0) == "Paris."


# -- the exact KL-regularised optimum --------------------------------------------------------------------------

REF = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
REWARDS = np.array([0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize("beta", [0.0, 1e-3, 0.1, 1.0, 10.0, 1e3, math.inf])
def test_optimum_is_a_distribution(beta):
    policy = rlhf.kl_regularized_policy(REF, REWARDS, beta)
    assert np.all(np.isfinite(policy)) and np.all(policy >= 0)
    assert policy.sum() == pytest.approx(1.0, abs=1e-12)


def test_optimum_limits():
    ref = np.exp(REF) / np.exp(REF).sum()
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, REWARDS, 1e6), ref, atol=1e-5)
    np.testing.assert_allclose(rlhf.kl_regularized_policy(REF, REWARDS, math.inf), ref, atol=1e-12)
    assert rlhf.kl_regularized_policy(REF, REWARDS, 1e-3)[3] == pytest.approx(1.0)  # argmax reward
    assert rlhf.kl_regularized_policy(REF, REWARDS, 0.0).tolist() == [0, 0, 0, 1]
    # huge rewards at the smallest β: r/β overflows float64 without log-sum-exp
    big = rlhf.kl_regularized_policy(REF, REWARDS * 1e306, 1e-3)
    assert big.tolist() == [0, 0, 0, 1]
    # ties at the top share the mass in proportion to π_ref
    tie = rlhf.kl_regularized_policy(REF, np.array([0.0, 0.0, 5.0, 5.0]), 0.0)
    np.testing.assert_allclose(tie, [0, 0, 0.75, 0.25])


def test_optimum_matches_direct_formula_and_kl_matches_direct_computation():
    beta = 0.7
    weights = [math.exp(lr) * math.exp(r / beta) for lr, r in zip(REF, REWARDS, strict=True)]
    direct = [w / sum(weights) for w in weights]
    policy = rlhf.kl_regularized_policy(REF, REWARDS, beta)
    np.testing.assert_allclose(policy, direct, rtol=1e-12)
    ref = [math.exp(x) for x in REF]
    kl_direct = sum(p * math.log(p / q) for p, q in zip(direct, ref, strict=True))
    assert rlhf.kl_divergence(policy, np.array(ref)) == pytest.approx(kl_direct, rel=1e-12)
    # and the closed form for the optimum: KL = E_π*[r]/β − log Z
    log_z = math.log(sum(q * math.exp(r / beta) for q, r in zip(ref, REWARDS, strict=True)))
    assert kl_direct == pytest.approx(float(policy @ REWARDS) / beta - log_z, rel=1e-10)


def test_identical_candidates_and_bad_inputs():
    same = rlhf.kl_regularized_policy(REF, np.full(4, 2.5), 1e-3)
    np.testing.assert_allclose(same, np.exp(REF) / np.exp(REF).sum())  # equal rewards: nothing to chase
    assert rlhf.kl_regularized_policy(np.array([-3.0]), np.array([1.0]), 0.01).tolist() == [1.0]
    for bad in (float("nan"), -1.0):
        with pytest.raises(rlhf.RLInputError):
            rlhf.kl_regularized_policy(REF, REWARDS, bad)
    with pytest.raises(rlhf.RLInputError, match="NaN"):
        rlhf.kl_regularized_policy(REF, np.array([0.0, np.nan, 1.0, 2.0]), 0.1)
    with pytest.raises(rlhf.RLInputError):
        rlhf.kl_regularized_policy(REF, REWARDS[:2], 0.1)


def _toy_candidates(proxy, true) -> rlhf.Candidates:
    n = len(proxy)
    return rlhf.Candidates(
        prompt="p",
        texts=tuple(f"answer {i}" for i in range(n)),
        counts=(1,) * n,
        ref_logprobs=REF[:n],
        proxy=np.array(proxy, dtype=float),
        true=np.array(true, dtype=float),
        lengths=np.arange(n, dtype=float) + 5,
        stopped=(True,) * n,
        padding=np.arange(n, dtype=float),
    )


def test_frontier_kl_rises_as_beta_falls_and_hacking_shows():
    # the proxy loves the last (wrong) answer; the true reward prefers the first
    cands = _toy_candidates([0.0, 0.5, 1.0, 3.0], [1, 1, 0, 0])
    betas = rlhf.beta_grid()[::-1]  # β from 1e3 down to 1e-3
    curve = rlhf.frontier(cands, betas)
    assert curve.kl[0] == pytest.approx(0.0, abs=1e-3) and np.all(np.diff(curve.kl) >= -1e-12)
    assert curve.expected_proxy[-1] > curve.expected_proxy[0]
    assert curve.expected_true[-1] < curve.expected_true[0]  # reward hacking
    assert curve.kl[-1] == pytest.approx(-REF[3], rel=1e-3)  # all mass on one answer: KL = −log π_ref(y)
    # the vectorised frontier equals the optimum computed one β at a time
    for i in (0, 30, len(betas) - 1):
        point = rlhf.optimum_at(cands, betas[i])
        assert curve.kl[i] == pytest.approx(point.kl, abs=1e-9)
        assert curve.expected_proxy[i] == pytest.approx(point.expected_proxy, abs=1e-9)
        assert curve.expected_padding[i] == pytest.approx(point.expected_padding, abs=1e-9)
    huge = rlhf.frontier(_toy_candidates([0.0, 1e306, 2e306, 3e306], [1, 1, 0, 0]), [1e-3, 1.0])
    assert np.all(np.isfinite(huge.kl)) and huge.kl[0] == pytest.approx(-REF[3])


def test_sweep_slider_betas_span_the_range_ten_per_decade_and_hold_the_defaults():
    betas = rlhf.SWEEP_BETAS
    assert betas[0] == rlhf.BETA_MIN and betas[-1] == rlhf.BETA_MAX and len(betas) == 61
    assert list(betas) == sorted(set(betas))  # strictly increasing, no duplicates after rounding
    assert {0.001, 0.01, 0.1, 1.0, 10.0, 1000.0} <= set(betas)  # every decade, and the page's default 0.1
    assert all(float(f"{b:.3g}") == b for b in betas)  # as a link writes them (3 digits)


def test_frontier_summary_names_reward_hacking_only_when_correctness_drops():
    grid = rlhf.beta_grid()  # small β first: curve[-1] is π_ref
    hacked = rlhf.frontier_summary(rlhf.frontier(_toy_candidates([0.0, 0.5, 1.0, 3.0], [1, 1, 0, 0]), grid))
    assert hacked.startswith("From β = 1000 to β = 0.001, E[reward-model score] goes")
    assert "reward hacking" in hacked and "costs correctness: at β = " in hacked
    honest = rlhf.frontier_summary(rlhf.frontier(_toy_candidates([0.0, 0.5, 1.0, 3.0], [0, 0, 1, 1]), grid))
    assert "Here no β costs correctness" in honest and "correct answers" in honest
    # a drop within the margin is noise, not hacking
    almost = rlhf.Frontier(grid[:2], np.zeros(2), np.array([1.0, 0.0]), np.array([0.97, 1.0]), np.zeros(2), np.zeros(2))
    assert "Here no β costs correctness" in rlhf.frontier_summary(almost)


def test_side_by_side_table_has_one_row_per_beta_in_run_order():
    def step(beta, n, reward):
        keys = ("rewards/judge/mean", "true_reward", "kl_seq", "completions/mean_length", "padding")
        return {"beta": beta, "step": n, **dict.fromkeys(keys, reward)}

    history = [step(0.5, n, 1.0) for n in range(1, 8)] + [step(0.0, n, 0.5) for n in range(1, 4)]
    assert rlhf.run_betas(history) == [0.5, 0.0]
    rows = rlhf.side_by_side(history)
    assert [r["β"] for r in rows] == ["0.5", "0"] and [r["steps"] for r in rows] == [7, 3]
    assert rows[0]["correct"] == "100%" and rows[1]["reward (last 5 steps)"] == 0.5
    assert rlhf.side_by_side([]) == []


def test_checkpoint_samples_table_shows_the_bare_question_and_a_tick():
    prompt = chat_prompt("Where is Peru?")
    notes = [
        rlhf.SampledAnswers(10, 0.1, [(prompt, "In South America.", 1.23456, True), (prompt, "Rome.", -2.0, False)])
    ]
    rows = rlhf.checkpoint_samples(notes)
    assert rows[0] == {"β": "0.1", "step": 10, "question": "Where is Peru?", "answer": "In South America.",
                       "reward": 1.235, "correct": "✓"}  # fmt: skip
    assert rows[1]["correct"] == "✗"


def _job(status: str, metrics=(), result=None):
    from llmlab.jobs import Job

    job = Job("test", lambda job: None)  # never started: the fields are what a finished or live run has
    job.status, job.metrics, job.result = status, list(metrics), result
    return job


def test_pipeline_stages_follow_the_sessions_runs():
    (sft, rm, rl) = rlhf.pipeline_stages("tiny-sft", None, None)
    assert "tiny-sft" in sft[1] and "not trained in this session" in rm[1] and rl[1] == "not run in this session"
    assert rm[2] == rl[2] == rlhf.IDLE and sft[2] == rlhf.READY
    _, rm, rl = rlhf.pipeline_stages("p", _job("running", [{"step": 4}]), _job("running", [{"beta": 0.5, "step": 3}]))
    assert rm == ("2 · Reward model", "training… step 4", rlhf.BUSY) and rl[1] == "training… β = 0.5, step 3"
    scores = reward.PairScores((1.0, 2.0, 0.0), (0.0, 1.0, 1.0))
    run = reward.RewardRun(None, None, reward.RewardRunConfig(biased=True), scores, scores, 1.0, "p")
    last = {"beta": 0.1, "step": 5, "kl_seq": 1.234, "completions/mean_length": 9.6}
    _, rm, rl = rlhf.pipeline_stages("p", _job("done", result=run), _job("stopped", [last]))
    assert rm[1] == "trained on biased pairs\nheld-out accuracy 67%" and rm[2] == rlhf.READY
    assert rl == ("3 · RL policy (KL-penalised)", "stopped: last β = 0.1\nKL 1.23 nats, length 10 tokens", rlhf.READY)
    _, rm, rl = rlhf.pipeline_stages("p", _job("failed"), _job("failed"))
    assert (rm[1], rm[2], rl[1]) == ("run failed: nothing kept", rlhf.FAILED, "run failed")


def test_pipeline_dot_draws_three_escaped_boxes_and_their_arrows():
    dot = rlhf.pipeline_dot(rlhf.pipeline_stages("<b>odd</b> & model", None, None))
    assert dot.startswith("digraph rlhf {") and dot.endswith("}")
    assert dot.count("[label=<<b>") == 3 and "s0 -> s1" in dot and "s1 -> s2" in dot and "s0 -> s2" in dot
    assert "&lt;b&gt;odd&lt;/b&gt; &amp; model" in dot and "<b>odd</b>" not in dot  # names are text, not markup
    assert "in this session:<br/>tabs 2-3" in dot  # a state's lines become line breaks
    assert f'fillcolor="{rlhf.IDLE}"' in dot


def test_preference_probability_is_bradley_terry_and_never_overflows():
    assert reward.preference_probability(0.0, 0.0) == 0.5
    assert reward.preference_probability(2.0, 1.0) == pytest.approx(1 / (1 + math.exp(-1.0)), rel=1e-12)
    assert reward.preference_probability(-1e4, 1e4) == 0.0 and reward.preference_probability(1e4, -1e4) == 1.0


def test_readable_pairs_show_the_question_not_the_template():
    rows = preference_pairs(0, False, "train")[:3]
    table = preferences.readable_pairs(rows)
    assert [list(r) for r in table] == [["question", "chosen", "rejected"]] * 3
    assert (
        table[0]["question"] == preferences.question_text(rows[0]["prompt"]) and "<|user|>" not in table[0]["question"]
    )


# -- candidates from the real model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft():
    from llmlab.modeling import bundled_models, load_model

    return load_model("tiny-sft" if "tiny-sft" in bundled_models() else "tiny-base", "cpu")


@pytest.fixture(scope="module")
def untrained_rm(sft):
    return reward.reward_model_from(sft).eval()


def test_candidate_logprobs_equal_token_by_token_computation(sft, untrained_rm):
    prompt = chat_prompt("What is the capital of Spain?")
    cands = rlhf.sample_candidates(sft.model, sft.tokenizer, untrained_rm, prompt, k=12, seed=1, padded_rewrites=True)
    assert sum(cands.counts) == 12 and len(set(cands.texts)) == len(cands.texts)
    assert any(c == 0 and preferences.padding_level(t) > 0 for c, t in zip(cands.counts, cands.texts, strict=True))
    prompt_ids = sft.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for i in (0, len(cands.texts) - 1):
        answer_ids = sft.tokenizer(cands.texts[i], add_special_tokens=False)["input_ids"]
        if cands.stopped[i]:
            answer_ids = answer_ids + [sft.tokenizer.eos_token_id]
        ids, total = list(prompt_ids), 0.0
        with torch.inference_mode():
            for token in answer_ids:
                logits = sft.model(input_ids=torch.tensor([ids])).logits[0, -1]
                total += float(torch.log_softmax(logits.double(), -1)[token])
                ids.append(token)
        assert cands.ref_logprobs[i] == pytest.approx(total, abs=1e-3)
    direct = reward.score(untrained_rm, sft.tokenizer, [prompt] * len(cands.texts), list(cands.texts))
    np.testing.assert_allclose(cands.proxy, direct.double().numpy(), atol=1e-6)
    assert cands.true.tolist() == [true_reward(prompt, t) for t in cands.texts]
    with pytest.raises(rlhf.RLInputError):
        rlhf.sample_candidates(sft.model, sft.tokenizer, untrained_rm, "   ")


# The default recipe freezes the lowest 2 of 4 blocks for speed: held-out accuracy ~0.8 (seeds 0-2: 0.79-0.81)
# instead of ~0.9 with nothing frozen, in 9-10 s instead of ~25 s (llmlab/reward.py, RewardRunConfig). Chance is 0.5.
MIN_DEFAULT_ACCURACY = 0.75


# -- the reward model ------------------------------------------------------------------------------------------


def test_bradley_terry_loss_equals_trls(sft, tmp_path):
    rows = preference_pairs(0, False, "train")[:8]
    cfg = reward.RewardRunConfig(max_steps=1, batch_size=8)
    model = reward.reward_model_from(sft)
    with torch.no_grad():  # a non-trivial head, so the scores differ between answers
        model.score.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    trainer = reward.make_reward_trainer(model, sft.tokenizer, rows, cfg, str(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    model.eval()
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, dict(batch))
    scores = reward.score_pairs(model, sft.tokenizer, rows)
    ours = reward.bradley_terry_loss(torch.tensor(scores.chosen), torch.tensor(scores.rejected))
    assert float(ours) == pytest.approx(float(trl_loss), abs=1e-5)
    assert scores.loss == pytest.approx(float(trl_loss), abs=1e-5)
    assert len(set(scores.chosen)) > 1


def test_reward_model_run_lowers_the_loss_and_reports_held_out_accuracy(sft):
    """A short run (the default run's > 0.75 held-out accuracy is checked on the bundled default model, which
    `scripts/train_reward.py` trains with this same function: see the test below)."""
    from llmlab.jobs import Job

    job = Job("rm", lambda job: None)
    cfg = reward.RewardRunConfig(max_steps=30, eval_every=15)
    run = reward.train_reward_model(sft, cfg, job)
    logged = [r for r in job.metrics if "loss" in r]
    assert len(logged) == cfg.max_steps
    assert np.mean([r["loss"] for r in logged[-8:]]) < np.mean([r["loss"] for r in logged[:8]])
    held = [r["heldout_accuracy"] for r in job.metrics if "heldout_accuracy" in r]
    assert held[-1] == pytest.approx(run.heldout.accuracy)
    assert run.heldout.accuracy > 0.6, run.heldout.accuracy
    scores = job.notes_of(reward.HeldOutScores)  # score lists for the histogram
    assert scores and len(scores[-1].chosen) == len(scores[-1].rejected) > 0


def test_bad_reward_settings_fail_with_a_message(sft):
    with pytest.raises(reward.RewardInputError, match="learning rate"):
        reward.train_reward_model(sft, reward.RewardRunConfig(learning_rate=float("nan")))


# -- online RL ---------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kl_zero_drifts_further_than_a_large_kl_coefficient(sft):
    prompts = [q.prompt for q in questions("train")][:16]
    common = {"max_steps": 12, "learning_rate": 2e-3, "reward": "correctness", "seed": 0}
    common |= {"prompts_per_step": 4, "num_generations": 4}  # 16 answers a step: few, so the steps swing
    free = rlhf.run_rl(sft, None, rlhf.RLRunConfig(beta=0.0, **common), prompts=prompts)
    leashed = rlhf.run_rl(sft, None, rlhf.RLRunConfig(beta=5.0, **common), prompts=prompts)
    assert len(free.history) == len(leashed.history) == 12
    kl_free = rlhf.final_metrics(free.history)["kl_seq"]
    kl_leashed = rlhf.final_metrics(leashed.history)["kl_seq"]
    assert kl_free > kl_leashed, (kl_free, kl_leashed)
    assert any(p.ne(q).any() for p, q in zip(free.policy.parameters(), sft.model.parameters(), strict=True))


def test_grpo_runs_through_the_same_judge_with_trls_grpo_config(sft):
    cfg = rlhf.RLRunConfig(algorithm="GRPO", beta=0.5, max_steps=2, prompts_per_step=2, num_generations=4)
    cfg = dataclasses.replace(cfg, reward="correctness")
    config = rlhf.trainer_config(cfg, "/tmp/unused")
    assert type(config).__name__ == "GRPOConfig" and config.beta == 0.5 and config.num_generations == 4
    assert type(rlhf.trainer_config(rlhf.RLRunConfig(), "/tmp/unused")).__name__ == "RLOOConfig"
    run = rlhf.run_rl(sft, None, cfg)
    assert [h["step"] for h in run.history] == [1, 2]
    assert all(math.isfinite(h["kl_seq"]) and 0 <= h["true_reward"] <= 1 for h in run.history)
    assert any(p.ne(q).any() for p, q in zip(run.policy.parameters(), sft.model.parameters(), strict=True))


def test_rl_settings_are_checked():
    bad_settings = ({"beta": -1.0}, {"beta": float("nan")}, {"learning_rate": float("nan")}, {"num_generations": 1})
    for bad in (*bad_settings, {"algorithm": "PPO"}):
        with pytest.raises(rlhf.RLInputError):
            rlhf.RLRunConfig(**bad).check()


def test_diverging_runs_stop_with_a_clear_message(sft):
    from llmlab.jobs import DivergedError, Job

    with pytest.raises(DivergedError, match="learning rate"):
        reward.train_reward_model(sft, reward.RewardRunConfig(max_steps=20, learning_rate=1e30, eval_every=100))
    job = Job(
        "rl",
        rlhf.kl_comparison_work(sft, None, [rlhf.RLRunConfig(max_steps=6, learning_rate=1e30, reward="correctness")]),
    )
    job.start().join()
    assert job.status == "failed" and "learning rate" in job.error


def test_the_repo_ships_the_pages_default_reward_models_for_the_bundled_policy():
    """The RLHF page's first view must not train: both default reward models are bundled for tiny-sft's
    current weights and the current preference data (else run scripts/train_reward.py)."""
    import json

    from llmlab import reward
    from llmlab.modeling import load_model

    policy = load_model("tiny-sft", "cpu")
    for biased in (False, True):
        folder = reward.reward_model_folder(policy, reward.RewardRunConfig(biased=biased))
        assert folder.parent == reward.BUNDLED_REWARD_DIR and (folder / "model.safetensors").is_file()
        run = json.loads((folder / "reward_run.json").read_text())
        assert run["config"]["biased"] is biased and run["heldout_accuracy"] > MIN_DEFAULT_ACCURACY
    honest = reward.load_or_train_reward_model(policy, reward.RewardRunConfig(biased=False))
    assert (
        honest.heldout.accuracy > MIN_DEFAULT_ACCURACY and honest.heldout_true.accuracy > MIN_DEFAULT_ACCURACY
    )  # scored now, on held-out pairs
    biased = reward.load_or_train_reward_model(policy, reward.RewardRunConfig(biased=True))
    assert biased.heldout.accuracy > MIN_DEFAULT_ACCURACY > biased.heldout_true.accuracy  # it learned the length bias


@pytest.mark.slow
def test_the_default_rlhf_pipeline_makes_the_model_more_correct(sft):
    """Issue 19: the bundled reward model (trained on the shipped on-policy pairs) and the default online-RL run
    raise the share of right answers sampled for all 96 questions (85% -> 87-89% over seeds 0-2 in
    bench/bench_alignment.py), at small KL."""
    from llmlab import policy_eval

    rm = reward.load_or_train_reward_model(sft, reward.RewardRunConfig())
    run = rlhf.run_rl(sft, rm, rlhf.RLRunConfig())
    report = policy_eval.compare_on(
        "held-out", run.policy, sft.model, sft.tokenizer, preference_pairs(split="test"), true_reward,
        asked=preferences.asked("test"),
    )  # fmt: skip
    assert report.reward_after > report.reward_before + 0.01, (report.reward_before, report.reward_after)
    assert report.kl < 1
