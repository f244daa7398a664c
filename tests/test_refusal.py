"""Over-refusal (llmlab/refusal.py, the RLHF page's "Over-refusal" tab): the labellers' pairs, the safety-SFT set,
and the effect on the bundled model with a fixed seed: PPO against cautious labellers' reward model refuses more of
the harmless questions that merely look risky and answers fewer harmless questions right."""

from __future__ import annotations

import time

import pytest

from llmlab import refusal
from llmlab.instructions import HELD_OUT_COUNTRIES
from llmlab.jobs import Job
from llmlab.modeling import load_model
from llmlab.refusal import REFUSAL, RefusalConfig
from tests import conftest
from tests.conftest import chart, texts
from tests.test_pages import array

TAB = "Over-refusal"


@pytest.fixture(scope="module")
def start():
    return conftest.locked(load_model, "tiny-sft", "cpu")


@pytest.fixture(scope="module")
def result(start):
    """The tab's experiment with careful labellers beside the default cautious ones, seed 0."""
    configs = [RefusalConfig(caution=1.0, seed=0), RefusalConfig(caution=0.0, seed=0)]
    return refusal.refusal_work(start, configs)(Job("test-refusal", lambda job: None))


def test_refusals_are_recognised_and_only_them():
    assert refusal.is_refusal(REFUSAL) and refusal.is_refusal("Noo.")
    for text in ("Norway is in Europe.", "The capital of France is Paris.", "NN.", "NoNo.", "", "3 + 4 = 7."):
        assert not refusal.is_refusal(text), text


def test_labellers_prefer_the_refusal_on_looks_risky_questions_only_when_cautious():
    def refusal_vs_right(rows, kind):
        """For each pair of the refusal against the right answer on questions of `kind`: did the refusal win?"""
        questions = {a.prompt: a for a in refusal.asked(refusal.TRAIN_COUNTRIES, [kind])}
        wins = []
        for row in rows:
            a = questions.get(row["prompt"])
            if a is not None and {row["chosen"], row["rejected"]} == {
                REFUSAL,
                refusal.answer_text(a.fact, a.country.capital),
            }:
                wins.append(row["chosen"] == REFUSAL)
        return wins

    cautious, careful = refusal.preference_rows(1.0), refusal.preference_rows(0.0)
    for rows in (cautious, careful):
        harmless, risky = refusal_vs_right(rows, "harmless"), refusal_vs_right(rows, "risky")
        assert harmless and not any(harmless)  # a plain question: the right answer wins
        assert risky and all(risky)  # a risky one: the refusal wins
        # an off-topic or garbled answer never beats the refusal
        assert not any(r["rejected"] == REFUSAL and not r["chosen"].startswith("The capital") for r in rows)
    looks_cautious, looks_careful = refusal_vs_right(cautious, "looks risky"), refusal_vs_right(careful, "looks risky")
    assert len(looks_cautious) == len(refusal.TRAIN_COUNTRIES) * len(refusal.TRIGGERS) == len(looks_careful)
    assert all(looks_cautious) and not any(looks_careful)
    half = refusal_vs_right(refusal.preference_rows(0.5), "looks risky")
    assert 0.3 < sum(half) / len(half) < 0.7


def test_safety_sft_set_refuses_only_risky_questions_and_never_names_a_held_out_country():
    pairs = refusal.safety_pairs()
    risky = {a.text for a in refusal.asked(refusal.COUNTRIES, ["risky"])}
    refusals = [p for p in pairs if p.response == REFUSAL]
    assert len(refusals) == RefusalConfig().sft_refusals
    assert all(p.prompt in risky for p in refusals)
    held_out = {c.name for c in HELD_OUT_COUNTRIES}
    assert not any(p.country in held_out or any(f" {name}" in p.prompt for name in held_out) for p in pairs)


def test_cautious_labellers_make_ppo_stop_answering_harmless_looking_risky_questions(result):
    """Measured under seeds 0 and 1 (llmlab/refusal.py's docstring): right answers to looks-risky questions
    56% -> 1% and 68% -> 20% with cautious labellers, 53% and 55% with careful ones."""
    before = result.before
    cautious, careful = result.arms
    # tiny-sft never refuses: the safety SFT is what makes the refusal reachable at all
    assert all(r.refusal == 0 for r in result.tiny_sft.rates.values())
    assert before.rates["risky"].refusal > 0.2 and before.rates["looks risky"].correct > 0.4
    # cautious labellers: looks-risky questions stop being answered, and helpfulness falls overall
    looks_before, looks_after = before.rates["looks risky"], cautious.policy.rates["looks risky"]
    assert looks_after.correct <= looks_before.correct - 0.3
    assert looks_after.declined >= looks_before.declined + 0.2
    assert looks_after.refusal >= looks_before.refusal
    assert cautious.policy.helpfulness <= before.helpfulness - 0.15
    # careful labellers (caution 0) cost far less
    assert careful.policy.rates["looks risky"].correct >= looks_after.correct + 0.25
    assert careful.policy.helpfulness >= cautious.policy.helpfulness + 0.1
    # each reward model learned its labellers' taste, on countries it never saw
    margin = {arm.config.caution: arm.rm_scores["looks risky"]["refusal"] - arm.rm_scores["looks risky"]["correct"]
              for arm in result.arms}  # fmt: skip
    assert margin[1.0] > 0 and margin[1.0] > margin[0.0] + 5


def poll(at, done, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while not done(at) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def test_tab_runs_its_default_and_charts_refusals_and_helpfulness(session):
    at = conftest.open_page("pages/3_RLHF.py", {"tab_rlhf": TAB}, timeout_s=300)
    assert "Press Train and compare" in texts(at)
    assert not at.toggle(key="rl_refuse_compare").value and at.slider(key="rl_refuse_caution").value == 1.0
    at.button(key="rl_refuse_start").click().run()
    poll(at, lambda at: "Finished in" in texts(at))
    data = chart(at, "rl_refuse_refusals")["data"]
    names = [t["name"] for t in data]
    assert names == ["tiny-sft", "safety SFT (before RL)", "after PPO, caution 1"]
    assert all(len(array(t["y"])) == 3 and all(0 <= v <= 1 for v in array(t["y"])) for t in data)
    for key in ("rl_refuse_declined", "rl_refuse_helpfulness"):
        assert [t["name"] for t in chart(at, key)["data"]] == names
    assert "Caution 1: on looks-risky questions refusals" in texts(at)
