"""Model collapse (SFT card, question 4): the measures on known inputs, the data each generation trains on, and the
effect on tiny-sft with a fixed seed: on its own answers the variety and the entropy fall generation after
generation, and less with real pairs mixed in; the tab runs its default in AppTest and charts it."""

import random
import time

import pytest

from llmlab import collapse
from llmlab.collapse import MIXED, SELF_ONLY, CollapseConfig, Sample
from llmlab.instructions import Instruction, polished_pairs
from tests import conftest
from tests.test_pages import array, figure, run_page


def wait_for_run(at, limit_s: float) -> list[str]:
    """Re-run the page until no run panel is running or queued (AppTest never fires run_every); the end statuses."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy = any(c.value.startswith("Running…") for c in at.caption) or any(
            "Waiting for a free training slot" in i.value for i in at.info
        )
        if not busy:
            return [e.value for e in [*at.success, *at.error]]
        time.sleep(0.5)
        at.run()
    raise AssertionError("the run did not finish in time")


def chart(at, key_fragment: str) -> dict:
    for n, element in enumerate(at.get("plotly_chart")):
        if key_fragment in element.proto.id:
            return figure(at, n)
    raise AssertionError(f"no chart {key_fragment}")


@pytest.fixture(scope="module")
def tiny_sft():
    from llmlab.modeling import load_model

    return conftest.locked(load_model, "tiny-sft", "cpu")


def test_story_choices_count_the_places_objects_and_activities_used():
    story = "a little fox named Ben lived in a sunny farm. Every day, Ben liked to bake bread. One day, Ben found a red ball."
    assert collapse.story_choices([story]) == 3
    assert collapse.story_choices([story, story.replace("sunny farm", "busy city")]) == 4
    assert collapse.story_choices([]) == 0


def test_distinct_n_counts_distinct_ngrams_over_all_answers():
    assert collapse.distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert collapse.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert collapse.distinct_n(["The cat", "the CAT"], 2) == 0.5  # words, lower case
    assert collapse.distinct_n(["one"], 2) == 0.0  # no bigram at all


def test_facts_are_checked_with_the_projects_true_reward_and_other_kinds_are_not():
    capital = next(p for p in polished_pairs() if p.kind == "capital" and not p.prompt.startswith("What is"))
    right = Sample(capital, f"The capital of {capital.country} is {capital.answer}.", True)
    wrong = Sample(capital, f"The capital of {capital.country} is Atlantis. Or Paris, or Rome.", True)
    story = next(p for p in polished_pairs() if p.kind == "story")
    assert collapse.is_right(right) is True
    assert collapse.is_right(wrong) is False
    assert collapse.is_right(Sample(story, story.response, True)) is None


def test_next_generation_data_keeps_its_size_drops_unfinished_answers_and_mixes_real_pairs():
    pairs = polished_pairs()[:10]
    samples = [Sample(p, f"answer {n}", stopped=n != 0) for n, p in enumerate(pairs)]
    real = polished_pairs(seed=1)
    own, n_real = collapse.training_pairs(samples, real, 0.0, random.Random(0))
    assert n_real == 0 and [p.response for p in own] == [f"answer {n}" for n in range(1, 10)]
    mixed, n_real = collapse.training_pairs(samples, real, 0.5, random.Random(0))
    assert len(mixed) == 9 and n_real == round(0.5 * 9)
    assert sum(p in real for p in mixed) == n_real
    assert sum(p.response.startswith("answer") for p in mixed) == 9 - n_real


def test_prompts_take_every_kind_in_turn():
    prompts, real = collapse.prompt_set(CollapseConfig(prompts=12))
    assert [p.kind for p in prompts[:6]] == [p.kind for p in prompts[6:12]]
    assert len({p.kind for p in prompts}) == 6
    assert real and real != polished_pairs(seed=0)


def test_sampling_at_temperature_zero_is_the_greedy_answer(tiny_sft):
    from llmlab.nexttoken import sample_answers
    from llmlab.sft import chat_prompt_ids

    prompts = [chat_prompt_ids(tiny_sft.tokenizer, q) for q in ("What is the capital of France?", "Where is Peru?")]
    greedy = sample_answers(tiny_sft.model, tiny_sft.tokenizer, prompts, greedy=True)
    assert collapse.sample_at(tiny_sft.model, tiny_sft.tokenizer, prompts, 0.0, max_new_tokens=24) == greedy
    cold = collapse.sample_at(tiny_sft.model, tiny_sft.tokenizer, prompts * 8, 0.2, seed=3)
    hot = collapse.sample_at(tiny_sft.model, tiny_sft.tokenizer, prompts * 8, 1.5, seed=3)
    assert len({tuple(a) for a in cold}) < len({tuple(a) for a in hot})


def test_entropy_is_read_along_the_response_tokens_only(tiny_sft):
    pair = Instruction("What is the capital of France?", "The capital of France is Paris.", "capital")
    other_prompt = Instruction("What is the capital of Spain?", pair.response, "capital")
    h = collapse.next_token_entropy(tiny_sft.model, tiny_sft.tokenizer, [pair])
    assert 0.0 <= h < 1.0  # a fact the model knows: a peaked distribution
    assert collapse.next_token_entropy(tiny_sft.model, tiny_sft.tokenizer, [pair, pair]) == pytest.approx(h, abs=1e-5)
    assert collapse.next_token_entropy(tiny_sft.model, tiny_sft.tokenizer, [other_prompt]) != pytest.approx(h)


def test_own_answers_narrow_generation_after_generation_and_real_data_slows_it(tiny_sft):
    """The default run (temperature 0.5, 3 generations, seed 0): on its own answers distinct-2 and the entropy
    fall at every generation; with half real pairs they end higher. The facts stay right at this temperature."""
    result = collapse.run_collapse(tiny_sft, CollapseConfig(seed=0))
    own, mixed = result.runs[SELF_ONLY], result.runs[MIXED]
    assert [g.generation for g in own] == [g.generation for g in mixed] == [0, 1, 2, 3]
    assert own[0] == mixed[0] or own[0].distinct_2 == mixed[0].distinct_2  # one start, measured once
    d2 = [g.distinct_2 for g in own]
    entropy = [g.entropy for g in own]
    assert all(b < a for a, b in zip(d2, d2[1:], strict=False)), d2
    assert d2[-1] < 0.85 * d2[0], d2
    assert entropy[-1] < 0.9 * entropy[0], entropy
    assert mixed[-1].distinct_2 > own[-1].distinct_2, (mixed[-1].distinct_2, d2)
    assert mixed[-1].entropy > own[-1].entropy, (mixed[-1].entropy, entropy)
    assert own[-1].story_choices < mixed[-1].story_choices <= own[0].story_choices  # the long tail goes first
    assert min(g.correct for g in own) >= 0.9
    assert mixed[-1].real_pairs == round(0.5 * mixed[-1].train_pairs)


def test_the_tab_runs_its_default_and_charts_each_generation():
    at = run_page("pages/2_SFT.py")
    assert at.select_slider(key="sft_mc_temperature").value == CollapseConfig.temperature
    at.button(key="sft_collapse_start").click().run()
    statuses = wait_for_run(at, limit_s=600)
    assert any(s.startswith("Finished") for s in statuses), statuses
    assert not at.exception
    distinct = chart(at, "sft_collapse_distinct")["data"]
    assert [trace["name"] for trace in distinct] == [SELF_ONLY, MIXED]
    for trace in distinct:
        assert array(trace["x"]) == [0, 1, 2, 3]
    own, mixed = (array(trace["y"]) for trace in distinct)
    assert own[0] == mixed[0] and own[-1] < own[0]
    assert [t["name"] for t in chart(at, "sft_collapse_entropy")["data"]] == [SELF_ONLY, MIXED]
    assert [t["name"] for t in chart(at, "sft_collapse_correct")["data"]] == [SELF_ONLY, MIXED]
    table = next(df.value for df in at.dataframe if "distinct-2" in df.value.columns)
    assert len(table) == 8
    answers = next(df.value for df in at.dataframe if "prompt" in df.value.columns)
    assert {SELF_ONLY, MIXED} <= set(answers.columns) and (answers[SELF_ONLY] != "").all()


def test_the_cards_question_points_at_the_tab():
    from llmlab.lessons import load_lesson

    hint = load_lesson("sft").try_it_for("sft-q4")
    assert hint is not None and hint.tab == "Model collapse"
    page = (conftest.ROOT / "pages" / "2_SFT.py").read_text()
    assert 'Tab("Model collapse", "ui.demos.sft.collapse")' in page
