"""PPO (llmlab/ppo.py): each formula against a direct, loop-by-loop computation on small hand-made tensors, the
settings' checks, and real runs on tiny-sft (the shared model stays untouched, the reward-model score rises)."""

import math

import pytest
import torch

from llmlab import ppo
from llmlab.jobs import DivergedError

# Three answers of 4, 2 and 3 tokens: the mask's ones come first, then padding.
MASK = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]])


def lengths(mask: torch.Tensor) -> list[int]:
    return [int(n) for n in mask.sum(dim=1)]


# -- per-token rewards -------------------------------------------------------------------------------------------


def test_per_token_rewards_charge_the_kl_per_token_and_put_the_score_on_the_last_answer_token():
    torch.manual_seed(0)
    logp, ref_logp = -torch.rand(3, 4) * 3, -torch.rand(3, 4) * 3
    scores, beta = torch.tensor([2.0, -1.0, 5.0]), 0.3
    rewards = ppo.per_token_rewards(scores, logp, ref_logp, MASK, beta)
    for b, n in enumerate(lengths(MASK)):
        for t in range(4):
            expected = -beta * (logp[b, t].item() - ref_logp[b, t].item()) if t < n else 0.0
            if t == n - 1:
                expected += scores[b].item()
            assert rewards[b, t].item() == pytest.approx(expected, abs=1e-6), (b, t)
    # summed over an answer: score − β·k1
    k1 = ppo.kl_k1(logp, ref_logp, MASK)
    assert torch.allclose(rewards.sum(dim=1), scores - beta * k1, atol=1e-6)


def test_per_token_rewards_at_beta_zero_are_the_score_alone():
    logp = torch.zeros(3, 4)
    rewards = ppo.per_token_rewards(torch.tensor([1.0, 2.0, 3.0]), logp, logp - 5, MASK, 0.0)
    assert rewards.tolist() == [[0, 0, 0, 1.0], [0, 2.0, 0, 0], [0, 0, 3.0, 0]]


# -- GAE -----------------------------------------------------------------------------------------------------------


def gae_by_hand(rewards, values, mask, gamma, lam):
    """The textbook recursion, one answer and one token at a time, in Python floats."""
    advantages, returns = torch.zeros_like(rewards), torch.zeros_like(rewards)
    for b, n in enumerate(lengths(mask)):
        running = 0.0
        for t in reversed(range(n)):
            next_value = values[b, t + 1].item() if t + 1 < n else 0.0
            delta = rewards[b, t].item() + gamma * next_value - values[b, t].item()
            running = delta + gamma * lam * running
            advantages[b, t] = running
            returns[b, t] = running + values[b, t].item()
    return advantages, returns


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_equals_the_recursion_computed_token_by_token(gamma, lam):
    torch.manual_seed(1)
    rewards, values = torch.randn(3, 4), torch.randn(3, 4)
    advantages, returns = ppo.gae(rewards, values, MASK, gamma, lam)
    expected_adv, expected_ret = gae_by_hand(rewards, values, MASK, gamma, lam)
    assert torch.allclose(advantages, expected_adv, atol=1e-5)
    assert torch.allclose(returns, expected_ret, atol=1e-5)
    assert (advantages[MASK == 0] == 0).all() and (returns[MASK == 0] == 0).all()  # nothing leaks past the end


def test_gae_limits_lambda_one_is_return_minus_value_and_lambda_zero_is_one_step():
    torch.manual_seed(2)
    rewards, values = torch.randn(3, 4), torch.randn(3, 4)
    full, _ = ppo.gae(rewards, values, MASK, 1.0, 1.0)
    rewards_to_go = (rewards * MASK).flip(1).cumsum(1).flip(1)
    assert torch.allclose(full, (rewards_to_go - values) * MASK, atol=1e-5)  # Monte Carlo return − V
    one_step, _ = ppo.gae(rewards, values, MASK, 1.0, 0.0)
    next_values = torch.cat([values[:, 1:], torch.zeros(3, 1)], dim=1) * torch.cat([MASK[:, 1:], torch.zeros(3, 1)], 1)
    assert torch.allclose(one_step, (rewards + next_values - values) * MASK, atol=1e-6)  # δ_t


def test_whiten_gives_zero_mean_unit_std_over_answer_tokens_only():
    torch.manual_seed(3)
    x = torch.randn(3, 4) * 5 + 7
    x[MASK == 0] = 1000.0  # must not count
    white = ppo.whiten(x, MASK)
    kept = white[MASK == 1]
    assert kept.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert kept.std().item() == pytest.approx(1.0, abs=1e-4)  # unbiased, as trl's masked_whiten
    assert (white[MASK == 0] == 0).all()
    assert torch.allclose(kept, (x[MASK == 1] - x[MASK == 1].mean()) / x[MASK == 1].std(), atol=1e-4)


# -- the losses ----------------------------------------------------------------------------------------------------


def test_policy_loss_clips_where_the_ratio_moved_past_epsilon_in_the_advantages_direction():
    ratio = torch.tensor([[1.5, 0.5, 1.1, 0.7, 3.0]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0]])  # the last token would clip, but it is not an answer token
    logp_old = torch.full((1, 5), -2.0)
    logp_new = (logp_old + ratio.log()).requires_grad_(True)
    loss, clip_fraction = ppo.policy_loss(logp_new, logp_old, advantages, mask, clip=0.2)
    # per token max(−A·ratio, −A·clip(ratio)): 1.5 → −1.2 (clipped), 0.5 → −0.5, 1.1 → 1.1, 0.7 → 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1 + 0.8) / 4, abs=1e-6)
    assert clip_fraction.item() == pytest.approx(2 / 4)
    loss.backward()
    grad = logp_new.grad[0]
    assert grad[0] == 0 and grad[3] == 0 and grad[4] == 0  # clipped tokens (and masked ones) get no gradient
    assert grad[1] != 0 and grad[2] != 0


def test_policy_loss_without_change_is_minus_the_mean_advantage_and_never_clips():
    torch.manual_seed(4)
    logp, advantages = -torch.rand(3, 4), torch.randn(3, 4)
    loss, clip_fraction = ppo.policy_loss(logp, logp, advantages, MASK, clip=0.2)
    assert loss.item() == pytest.approx(-(advantages[MASK == 1]).mean().item(), abs=1e-6)
    assert clip_fraction.item() == 0.0


def test_value_loss_is_the_larger_of_the_plain_and_the_clipped_squared_error():
    values = torch.tensor([[1.0, 0.0, 2.0, 5.0]])
    values_old = torch.tensor([[0.5, 0.0, 1.0, 0.0]])
    returns = torch.tensor([[2.0, 1.0, 0.0, 9.0]])
    mask = torch.tensor([[1.0, 1, 1, 0]])
    loss = ppo.value_loss(values, values_old, returns, mask, value_clip=0.2)
    expected = []
    for v, v_old, r in zip(values[0, :3].tolist(), values_old[0, :3].tolist(), returns[0, :3].tolist(), strict=True):
        clipped = min(max(v, v_old - 0.2), v_old + 0.2)
        expected.append(max((v - r) ** 2, (clipped - r) ** 2))
    assert loss.item() == pytest.approx(0.5 * sum(expected) / 3)
    assert expected == [(0.7 - 2.0) ** 2, 1.0, 4.0]  # the first token's value moved too far: clipped is larger


# -- KL estimators ---------------------------------------------------------------------------------------------------


def test_kl_estimators_k1_can_be_negative_k3_never_is():
    logp = torch.tensor([[-1.0, -0.5, -2.0, -1.0], [-3.0, -1.0, -9.0, -9.0], [-0.2, -0.3, -0.1, -9.0]])
    ref_logp = torch.tensor([[-0.5, -0.4, -1.0, -0.8], [-1.0, -1.0, 0.0, 0.0], [-0.2, -0.3, -0.1, 0.0]])
    k1, k3 = ppo.kl_k1(logp, ref_logp, MASK), ppo.kl_k3(logp, ref_logp, MASK)
    for b, n in enumerate(lengths(MASK)):
        d = [logp[b, t].item() - ref_logp[b, t].item() for t in range(n)]
        assert k1[b].item() == pytest.approx(sum(d), abs=1e-6)
        assert k3[b].item() == pytest.approx(sum(math.exp(-x) - 1 + x for x in d), rel=1e-5, abs=1e-6)
    assert k1[:2].lt(0).all() and k1.mean() < 0  # π gave these answers less probability than π_ref did
    assert k3[:2].gt(0).all() and k3[2] == 0  # identical log-probs: both estimators say 0
    torch.manual_seed(5)
    for _ in range(20):
        logp, ref_logp = -torch.rand(3, 4) * 4, -torch.rand(3, 4) * 4
        assert (ppo.kl_k3(logp, ref_logp, MASK) >= 0).all()


# -- RLOO and GRPO advantages ----------------------------------------------------------------------------------------


def test_rloo_and_grpo_advantages_match_direct_computation():
    scores = torch.tensor([1.0, 3.0, 2.0, 6.0, -1.0, -1.0, 4.0, 0.0])  # two prompts, 4 answers each
    rloo, grpo = ppo.rloo_advantages(scores, 4), ppo.grpo_advantages(scores, 4)
    for g in range(2):
        group = scores[4 * g : 4 * g + 4].tolist()
        mean = sum(group) / 4
        std = math.sqrt(sum((s - mean) ** 2 for s in group) / 3)
        for i, s in enumerate(group):
            others = [x for j, x in enumerate(group) if j != i]
            assert rloo[4 * g + i].item() == pytest.approx(s - sum(others) / 3, abs=1e-6)
            assert grpo[4 * g + i].item() == pytest.approx((s - mean) / (std + 1e-4), abs=1e-5)
        assert sum(rloo[4 * g : 4 * g + 4].tolist()) == pytest.approx(0.0, abs=1e-5)
    same = ppo.grpo_advantages(torch.tensor([2.0, 2.0]), 2)
    assert same.tolist() == [0.0, 0.0]  # no spread, no signal (and no division by zero)


# -- settings ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"beta": -1.0},
        {"beta": float("nan")},
        {"beta": float("inf")},
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"head_lr_scale": 0.0},
        {"max_steps": 0},
        {"num_generations": 0},
        {"ppo_epochs": 0},
        {"mini_batches": 0},
        {"mini_batches": 1000},
        {"clip": 0.0},
        {"value_clip": float("nan")},
        {"vf_coef": -0.1},
        {"gamma": 1.5},
        {"lam": -0.1},
        {"reward": "vibes"},
    ],
)
def test_bad_settings_raise_a_value_error_with_a_message(bad):
    with pytest.raises(ppo.PPOInputError) as err:
        ppo.PPOConfig(**bad).check()
    assert isinstance(err.value, ValueError) and len(str(err.value)) > 20


def test_default_settings_pass_and_every_field_has_help():
    from dataclasses import fields

    ppo.PPOConfig().check()
    assert all(f.metadata.get("help") for f in fields(ppo.PPOConfig) if f.name != "seed")


# -- real runs on tiny-sft ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sft():
    from llmlab.modeling import load_model

    return load_model("tiny-sft", "cpu")


@pytest.fixture(scope="module")
def rm(sft):
    from llmlab import reward

    return reward.load_or_train_reward_model(sft, reward.RewardRunConfig())  # the bundled one: no training


SMALL = {"max_steps": 3, "prompts_per_step": 4, "num_generations": 4, "ppo_epochs": 2, "sample_every": 2}
HISTORY_KEYS = {
    "step", "beta", "reward", "rewards/judge/mean", "true_reward", "kl_seq", "kl_k3", "completions/mean_length",
    "padding", "clip_fraction", "value_loss", "policy_loss", "approx_kl",
}  # fmt: skip


def test_rollout_log_probs_equal_the_projects_sequence_log_probs(sft):
    from llmlab.modeling import trainable_copy
    from llmlab.nexttoken import sequence_logps
    from llmlab.rlhf import rl_prompts

    torch.manual_seed(0)
    policy, head = trainable_copy(sft).eval(), ppo.ValueHead(sft.model.config.hidden_size)
    cfg = ppo.PPOConfig(reward="correctness", num_generations=3)
    batch = ppo.collect(policy, head, sft, None, rl_prompts()[:3], cfg)  # prompts of different lengths: left padding
    tok = sft.tokenizer
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in batch.prompts]
    answers = [row[:n].tolist() for row, n in zip(batch.answer_ids, lengths(batch.mask), strict=True)]
    assert all(a[-1] == tok.eos_token_id or len(a) == cfg.max_completion_length for a in answers)
    assert all(tok.eos_token_id not in a[:-1] for a in answers)  # the mask ends at the first end-of-text token
    direct = sequence_logps(sft.model, prompt_ids, answers, tok.pad_token_id)
    assert torch.allclose((batch.logp * batch.mask).sum(dim=1), direct, atol=1e-4)
    assert torch.allclose(batch.logp, batch.ref_logp)  # the policy is still the SFT model: KL 0
    assert batch.true.tolist() == batch.scores.tolist()  # the correctness reward is the true reward


class StopAfter:
    """A Job stand-in that asks to stop once `n` steps are logged."""

    def __init__(self, n: int):
        self.n, self.metrics, self.notes = n, [], []

    @property
    def should_stop(self) -> bool:
        return len(self.metrics) >= self.n

    def log(self, **values):
        self.metrics.append(values)

    def note(self, record):
        self.notes.append(record)


def test_a_short_run_trains_a_copy_and_logs_every_key(sft, rm):
    from llmlab.rlhf import SampledAnswers

    before = {k: v.clone() for k, v in sft.model.state_dict().items()}
    job = StopAfter(n=100)
    run = ppo.run_ppo(sft, rm, ppo.PPOConfig(**SMALL), job=job)
    assert all(torch.equal(before[k], v) for k, v in sft.model.state_dict().items())  # π_ref untouched
    assert not any(p.requires_grad for p in sft.model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(run.policy.parameters(), sft.model.parameters(), strict=True))
    assert run.value_head.linear.weight.abs().sum() > 0  # the critic learned something
    assert [h["step"] for h in run.history] == [1, 2, 3] and job.metrics == run.history
    for row in run.history:
        assert HISTORY_KEYS <= set(row), HISTORY_KEYS - set(row)
        assert all(math.isfinite(row[k]) for k in HISTORY_KEYS), row
        assert row["reward"] == row["rewards/judge/mean"] and 0 <= row["true_reward"] <= 1
        assert row["kl_k3"] >= 0 and 0 <= row["clip_fraction"] <= 1 and row["approx_kl"] >= 0
        assert 1 <= row["completions/mean_length"] <= ppo.PPOConfig().max_completion_length
    assert run.history[0]["kl_seq"] == pytest.approx(0.0, abs=1e-5)  # the first batch comes from π_ref itself
    notes = [n for n in job.notes if isinstance(n, SampledAnswers)]
    assert [n.step for n in notes] == [0, 2] and len(notes[0].samples) == SMALL["prompts_per_step"]


def test_a_run_stops_on_request_and_is_deterministic(sft):
    cfg = ppo.PPOConfig(**SMALL, reward="correctness")
    stopped = ppo.run_ppo(sft, None, cfg, job=StopAfter(n=2))
    assert len(stopped.history) == 2  # what was done is kept
    again = ppo.run_ppo(sft, None, cfg, job=StopAfter(n=2))
    assert again.history == stopped.history
    assert all(torch.equal(p, q) for p, q in zip(again.policy.parameters(), stopped.policy.parameters(), strict=True))


def test_a_reward_model_run_needs_a_reward_model_and_a_huge_learning_rate_diverges(sft):
    with pytest.raises(ppo.PPOInputError, match="reward model"):
        ppo.run_ppo(sft, None, ppo.PPOConfig(**SMALL))
    with pytest.raises(DivergedError, match="learning rate"):
        ppo.run_ppo(sft, None, ppo.PPOConfig(**{**SMALL, "max_steps": 6}, reward="correctness", learning_rate=1e30))


def test_answer_advantages_put_ppo_next_to_rloo_and_grpo(sft, rm):
    from llmlab.rlhf import rl_prompts

    cfg = ppo.PPOConfig(**SMALL, gamma=1.0, lam=1.0)
    run = ppo.run_ppo(sft, rm, cfg)
    view = ppo.answer_advantages(run, sft, rm, rl_prompts()[0])
    n = cfg.num_generations
    assert len(view.completions) == len(view.ppo) == len(view.rloo) == len(view.grpo) == n
    rewards = [s - cfg.beta * k for s, k in zip(view.scores, view.kl, strict=True)]
    # with γ = λ = 1, GAE's first-token advantage is the answer's whole reward minus the critic's V(prompt)
    for a, r, v in zip(view.ppo, rewards, view.value, strict=True):
        assert a == pytest.approx(r - v, abs=1e-4)
    assert view.rloo == pytest.approx(ppo.rloo_advantages(torch.tensor(rewards), n).tolist(), abs=1e-5)
    assert sum(view.grpo) == pytest.approx(0.0, abs=1e-4)


def heldout_answers(model, tokenizer, samples: int = 4) -> tuple[list[str], list[str]]:
    """(prompts, answers): `samples` answers sampled for each of the 96 questions of the held-out pairs (the RL prompts too), with fixed seeds."""
    from llmlab.nexttoken import sample_answers
    from llmlab.preferences import questions

    prompts = [q.prompt for q in questions("test")]
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    answers = [
        tokenizer.decode(a, skip_special_tokens=True)
        for s in range(samples)
        for a in sample_answers(model, tokenizer, ids, seed=100 + s)
    ]
    return prompts * samples, answers


@pytest.mark.slow
def test_the_default_run_raises_the_reward_model_score_without_costing_correctness(sft, rm):
    """Scored on the same 384 answers' worth of those questions before and after: a step's mean reward in the
    history mostly says which 8 questions that batch drew (their scores differ by several units)."""
    from llmlab.preferences import true_reward
    from llmlab.reward import score

    run = ppo.run_ppo(sft, rm, ppo.PPOConfig())
    (prompts, before), (_, after) = (
        heldout_answers(sft.model, sft.tokenizer),
        heldout_answers(run.policy, sft.tokenizer),
    )
    scores = [score(rm.model, sft.tokenizer, prompts, answers).mean().item() for answers in (before, after)]
    correct = [sum(map(true_reward, prompts, answers)) / len(prompts) for answers in (before, after)]
    assert scores[1] > scores[0] + 0.3, scores
    assert correct[1] > correct[0] - 0.02, correct  # the unbiased reward model does not trade correctness away
    assert sum(r["kl_seq"] for r in run.history[-5:]) / 5 < 2  # β holds the policy near the SFT model


# -- the card's API: PPOTrainer(config, model, tokenizer), generate, step --------------------------------------------


def trainer_for(sft, **settings) -> ppo.PPOTrainer:
    from llmlab.modeling import trainable_copy

    return ppo.PPOTrainer(config=ppo.PPOConfig(**settings), model=trainable_copy(sft), tokenizer=sft.tokenizer)


def test_generate_gives_one_answer_per_prompt_as_text_and_leaves_the_global_generator_alone(sft):
    from llmlab.rlhf import rl_prompts

    prompts = [*rl_prompts()[:3], rl_prompts()[0]]  # a repeated prompt gets an answer of its own
    trainer = trainer_for(sft, seed=3)
    state = torch.get_rng_state()
    answers = trainer.generate(prompts)
    assert torch.equal(torch.get_rng_state(), state)  # a private stream: other sessions share the global one
    assert len(answers) == len(prompts) and all(isinstance(a, str) and a.strip() for a in answers)
    assert not any(sft.tokenizer.eos_token in a for a in answers)
    assert trainer_for(sft, seed=3).generate(prompts) == answers  # the same seed, the same answers
    assert trainer.generate(prompts) != answers  # the stream goes on from call to call
    assert not trainer.model.training  # sampled with dropout off
    assert trainer.generate([]) == []


def test_a_step_trains_the_model_in_place_and_leaves_the_reference_alone(sft, rm):
    from llmlab.reward import score
    from llmlab.rlhf import rl_prompts

    trainer = trainer_for(sft, ppo_epochs=2, mini_batches=2)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    reference = {k: v.clone() for k, v in trainer.ref_model.state_dict().items()}
    assert trainer.ref_model is not trainer.model and not any(p.requires_grad for p in trainer.ref_model.parameters())
    prompts = [p for p in rl_prompts()[:4] for _ in range(2)]
    responses = trainer.generate(prompts)
    stats = trainer.step(prompts, responses, score(rm.model, sft.tokenizer, prompts, responses).tolist())
    assert any(not torch.equal(p, q) for p, q in zip(trainer.model.parameters(), before, strict=True))
    assert all(torch.equal(reference[k], v) for k, v in trainer.ref_model.state_dict().items())
    assert {"loss", "policy_loss", "value_loss", "clip_fraction", "approx_kl", "reward", "kl_seq"} <= set(stats)
    assert all(math.isfinite(v) for v in stats.values()), stats
    assert 0 <= stats["clip_fraction"] <= 1 and stats["approx_kl"] >= 0
    assert stats["kl_seq"] == pytest.approx(0.0, abs=1e-5)  # sampled before the update: π = π_ref
    with pytest.raises(ppo.PPOInputError, match="one response and one score"):
        trainer.step(prompts, responses[:-1], [0.0] * len(prompts))
    with pytest.raises(ppo.PPOInputError, match="finite"):
        trainer.step(prompts, responses, [float("nan")] * len(prompts))
    with pytest.raises(ppo.PPOInputError, match="mini-batches"):
        trainer.step(prompts[:1], responses[:1], [1.0])


@pytest.mark.parametrize("beta, steps", [(1.0, 1), (0.1, 3)])
def test_steps_with_a_high_score_for_one_answer_raise_its_probability(sft, beta, steps):
    """Two questions' answers, a high score for the first. The answers are fixed text, not fresh samples: once
    they have moved, the KL charge −β·(log π − log π_ref) on their tokens pulls them back, and at β = 1 it
    undoes a step's move within a few steps (PPO's brake working); at β = 0.1 the favoured answer keeps rising."""
    from llmlab.nexttoken import sequence_logps
    from llmlab.rlhf import rl_prompts

    tok = sft.tokenizer
    trainer = trainer_for(sft, beta=beta, mini_batches=1)
    prompts = rl_prompts()[:2]  # the capital of France; the language spoken in France
    responses = [" The capital of France is Paris.", " People in France speak French."]
    prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    answer_ids = [[*tok(r, add_special_tokens=False)["input_ids"], tok.eos_token_id] for r in responses]

    def logps() -> list[float]:
        with torch.no_grad():
            return sequence_logps(trainer.model, prompt_ids, answer_ids, tok.pad_token_id).tolist()

    start = logps()
    for _ in range(steps):
        trainer.step(prompts, responses, [2.0, -2.0])  # text it did not sample: tokenized, ended with end-of-text
    favoured, other = logps()
    assert favoured > start[0] + 1.0, (start, favoured)
    assert other < start[1], (start, other)


def test_the_card_api_runs_the_same_ppo_as_run_ppo(sft, rm):
    """Fed run_ppo's batches and its reward-model scores, PPOTrainer reproduces run_ppo's history exactly."""
    import random

    from llmlab.modeling import trainable_copy
    from llmlab.reward import score
    from llmlab.rlhf import rl_prompts

    cfg = ppo.PPOConfig(**SMALL)
    prompts = rl_prompts()[: cfg.prompts_per_step]  # one batch's worth: every step draws them all, shuffled
    run = ppo.run_ppo(sft, rm, cfg, prompts=prompts)
    trainer = ppo.PPOTrainer(config=cfg, model=trainable_copy(sft), tokenizer=sft.tokenizer, ref_model=sft.model)
    order = random.Random(cfg.seed)  # run_ppo's prompt order
    for row in run.history:
        batch = [p for p in order.sample(prompts, len(prompts)) for _ in range(cfg.num_generations)]
        responses = trainer.generate(batch)
        stats = trainer.step(batch, responses, score(rm.model, sft.tokenizer, batch, responses).tolist())
        assert stats == {k: row[k] for k in stats}
    assert all(torch.equal(p, q) for p, q in zip(trainer.model.parameters(), run.policy.parameters(), strict=True))
