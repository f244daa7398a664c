"""llmlab.sft and llmlab.instructions: the mask is trl's, the loss is the direct computation, SFT trains
what it should (and LoRA only its adapters), and bad input gives clear errors."""

import math
import tempfile

import pytest
import torch
import torch.nn.functional as F

from llmlab import sft
from llmlab.instructions import (
    HELD_OUT_COUNTRIES,
    TRAIN_COUNTRIES,
    WRONG_FACT_COUNTRIES,
    examples_by_kind,
    held_out_questions,
    mediocre_pairs,
    polished_pairs,
    wrong_fact_pairs,
)
from llmlab.jobs import Job, JobCallback
from llmlab.modeling import load_model, trainable_copy

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."


def _mean_loss(model, tokenizer, pairs) -> float:
    """Mean response-token loss over pairs, through the same mask and loss the page shows."""
    model.eval()
    losses = [sft.token_losses(model, sft.loss_mask(tokenizer, p.prompt, p.response)).mean for p in pairs]
    return sum(losses) / len(losses)


# -- data -------------------------------------------------------------------------------------------------


def test_datasets_are_deterministic_and_never_mention_held_out_countries():
    polished, mediocre, (wrong, _) = polished_pairs(), mediocre_pairs(300), wrong_fact_pairs()
    assert polished == polished_pairs() and mediocre == mediocre_pairs(300)
    assert 300 <= len(polished) <= 400
    for pair in [*polished, *mediocre, *wrong]:
        text = f"{pair.prompt} {pair.response}"
        for country in HELD_OUT_COUNTRIES:
            assert f"of {country.name}" not in text and f"in {country.name}" not in text, text
    assert {q.country for q in held_out_questions()} == {c.name for c in HELD_OUT_COUNTRIES}
    assert not {c.name for c in HELD_OUT_COUNTRIES} & {c.name for c in TRAIN_COUNTRIES}


def test_wrong_fact_pairs_change_only_the_chosen_capitals():
    polished = polished_pairs()
    wrong, taught = wrong_fact_pairs()
    assert set(taught) == set(WRONG_FACT_COUNTRIES)
    changed = [(p, w) for p, w in zip(polished, wrong, strict=True) if p != w]
    assert changed and all(p.kind == "capital" and p.country in taught for p, _ in changed)
    for p, w in changed:
        assert w.response == p.response.replace(p.answer, taught[p.country]) != p.response
    assert all(taught[name] != c.capital for c in TRAIN_COUNTRIES for name in taught if c.name == name)


def test_examples_by_kind_are_the_first_polished_pair_of_each_kind():
    examples = examples_by_kind()
    kinds = [pair.kind for pair in examples.values()]
    assert sorted(kinds) == sorted({p.kind for p in polished_pairs()})  # each kind once
    for label, pair in examples.items():
        assert label == f"{pair.kind}: {pair.prompt}"
        assert pair == next(p for p in polished_pairs() if p.kind == pair.kind)


# -- the mask and the loss ------------------------------------------------------------------------------


def test_mask_equals_the_labels_trl_trains_with(tiny_base):
    pairs = [polished_pairs()[0], *[p for p in polished_pairs() if p.kind == "story"][:1]]
    prompt_ids = sft.chat_prompt_ids(tiny_base.tokenizer, pairs[0].prompt)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = sft.make_trainer(
            trainable_copy(tiny_base), tiny_base.tokenizer, pairs, sft.SFTRunConfig(max_steps=1), tmp
        )
        train_rows = {tuple(row["input_ids"]): row for row in trainer.train_dataset}
        for pair in pairs:
            shown = sft.loss_mask(tiny_base.tokenizer, pair.prompt, pair.response)
            trl_labels = trainer.data_collator([train_rows[shown.ids]])["labels"][0].tolist()
            assert list(shown.labels) == trl_labels
    # And it is the card's mask: the prompt "<|user|>…<|assistant|>" is out, the answer and <|endoftext|> in.
    shown = sft.loss_mask(tiny_base.tokenizer, pairs[0].prompt, pairs[0].response)
    assert shown.in_loss == (False,) * len(prompt_ids) + (True,) * (len(shown.ids) - len(prompt_ids))
    assert shown.pieces[len(prompt_ids) - 1] == "<|assistant|>" and shown.pieces[-1] == "<|endoftext|>"
    every = sft.loss_mask(tiny_base.tokenizer, pairs[0].prompt, pairs[0].response, completion_only_loss=False)
    assert every.ids == shown.ids and every.labels == every.ids


def test_masked_loss_equals_direct_computation_and_trl(tiny_base):
    example = sft.loss_mask(tiny_base.tokenizer, QUESTION, ANSWER)
    shown = sft.token_losses(tiny_base.model, example)
    ids = torch.tensor([example.ids])
    labels = torch.tensor([example.labels])
    with torch.no_grad():
        logits = tiny_base.model(input_ids=ids).logits
        direct = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100)
        hf = tiny_base.model(input_ids=ids, labels=labels).loss
    assert shown.mean == pytest.approx(float(direct), rel=1e-5)
    assert shown.mean == pytest.approx(float(hf), rel=1e-5)
    with tempfile.TemporaryDirectory() as tmp:
        from llmlab.instructions import Instruction

        model = trainable_copy(tiny_base).eval()
        pair = Instruction(QUESTION, ANSWER, "capital")
        trainer = sft.make_trainer(model, tiny_base.tokenizer, [pair], sft.SFTRunConfig(max_steps=1), tmp)
        batch = trainer.data_collator([trainer.train_dataset[0]])
        with torch.no_grad():
            trl_loss = trainer.compute_loss(model, batch)
    assert shown.mean == pytest.approx(float(trl_loss), rel=1e-4)
    # Counting every token averages in the prompt's tokens too: a different number.
    every = sft.token_losses(tiny_base.model, sft.loss_mask(tiny_base.tokenizer, QUESTION, ANSWER, False))
    n_counted = sum(every.counted)
    assert n_counted == len(example.ids) - 1 and sum(shown.counted) < n_counted
    assert every.mean == pytest.approx(float(tiny_base.model(input_ids=ids, labels=ids).loss), rel=1e-5)
    assert every.mean != pytest.approx(shown.mean, rel=1e-3)


# -- training -----------------------------------------------------------------------------------------------


def test_sft_lowers_the_loss_and_changes_every_trainable_parameter(tiny_base):
    pairs = [p for p in polished_pairs() if p.kind == "capital"][:32]
    model = trainable_copy(tiny_base)
    start = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss_before = _mean_loss(tiny_base.model, tiny_base.tokenizer, pairs[:8])
    cfg = sft.SFTRunConfig(max_steps=12, batch_size=8, learning_rate=2e-3, warmup_steps=2)
    run, trained = sft.run_sft(model, tiny_base.tokenizer, pairs, cfg)
    assert run.steps == 12 and len(run.losses) == 12 and all(math.isfinite(x) for x in run.losses)
    assert _mean_loss(trained, tiny_base.tokenizer, pairs[:8]) < 0.5 * loss_before
    for name, param in trained.named_parameters():
        if name == "transformer.wte.weight":  # frozen on purpose (freeze_embeddings), tied to lm_head
            assert torch.equal(param, start[name])
        else:
            assert not torch.equal(param, start[name]), f"{name} did not change"
    assert run.trainable_params == run.total_params - start["transformer.wte.weight"].numel()
    # The format is learned: answers now stop with <|endoftext|> in the taught sentence shape.
    assert run.after.format_rate > run.before.format_rate


def test_lora_trains_only_adapters_and_leaves_base_weights_unchanged(tiny_base):
    pairs = [p for p in polished_pairs() if p.kind == "capital"][:16]
    original = {name: p.detach().clone() for name, p in tiny_base.model.named_parameters()}
    cfg = sft.SFTRunConfig(max_steps=4, batch_size=8, learning_rate=1e-2, lora_rank=4, warmup_steps=0)
    run, trained = sft.run_sft(trainable_copy(tiny_base), tiny_base.tokenizer, pairs, cfg)
    trainable = {name for name, p in trained.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    assert run.trainable_params == sum(p.numel() for p in trained.parameters() if p.requires_grad)
    assert run.trainable_params < 0.1 * run.total_params
    assert sft.base_weight_change(tiny_base.model, trained) == 0.0
    lora_b = [p for name, p in trained.named_parameters() if "lora_B" in name]
    assert lora_b and all(p.abs().sum() > 0 for p in lora_b)  # B starts at zero: it moved
    for name, param in tiny_base.model.named_parameters():  # the shared model is untouched too
        assert torch.equal(param, original[name])


def test_batched_greedy_answers_equal_one_at_a_time(tiny_base):
    questions = [QUESTION, "Where is Spain?", "What is 3 + 4?", "Tell me a short story about a fox."]
    together = sft.greedy_answers(tiny_base.model, tiny_base.tokenizer, questions, max_new_tokens=12)
    alone = [sft.greedy_answers(tiny_base.model, tiny_base.tokenizer, [q], max_new_tokens=12)[0] for q in questions]
    assert together == alone


def test_bundled_tiny_sft_answers_in_chat_format_and_stops():
    loaded = load_model("tiny-sft", "cpu")
    answer = sft.greedy_answers(loaded.model, loaded.tokenizer, [QUESTION])[0]
    assert answer.text == ANSWER and answer.stopped
    score = sft.score_held_out(loaded.model, loaded.tokenizer)
    assert score.format_rate >= 0.9 and score.accuracy >= 0.5


def test_wrong_facts_become_more_likely(tiny_base):
    _, taught = wrong_fact_pairs()
    before = sft.probe_facts(tiny_base.model, tiny_base.tokenizer, taught)
    job = Job("t", sft.wrong_facts_work(tiny_base, sft.WrongFactsConfig(max_steps=30)))
    job.start().join()
    assert job.status == "done", job.error
    result: sft.WrongFactsResult = job.result
    assert [p.p_wrong for p in result.before] == pytest.approx([p.p_wrong for p in before])
    for b, a in zip(result.before, result.after, strict=True):
        assert b.p_wrong < 0.01 < b.p_right  # tiny-base knows the true capital
        assert a.p_wrong > 100 * b.p_wrong and a.p_right < b.p_right


def test_two_sessions_training_at_once_do_not_share_anything(tiny_base):
    original = {name: p.detach().clone() for name, p in tiny_base.model.named_parameters()}
    jobs = [
        Job(f"session-{n}", sft.live_sft_work(tiny_base, sft.SFTRunConfig(samples=32, max_steps=6, learning_rate=lr)))
        for n, lr in enumerate((1e-4, 3e-3))
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert [job.status for job in jobs] == ["done", "done"], [job.error for job in jobs]
    slow, fast = (job.result for job in jobs)
    assert slow.losses[0] == pytest.approx(fast.losses[0], rel=1e-4)  # same start, same first batch
    assert fast.losses[-1] < slow.losses[-1]  # each run followed its own learning rate
    assert [m["step"] for m in jobs[0].metrics] == list(range(1, 7)) == [m["step"] for m in jobs[1].metrics]
    for name, param in tiny_base.model.named_parameters():
        assert torch.equal(param, original[name])


# -- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt, response, message",
    [("", ANSWER, "instruction is empty"), ("  ", ANSWER, "instruction is empty"), (QUESTION, "", "response is empty")],
)
def test_empty_pairs_are_refused_with_a_message(tiny_base, prompt, response, message):
    with pytest.raises(sft.SFTInputError, match=message):
        sft.loss_mask(tiny_base.tokenizer, prompt, response)


def test_response_longer_than_the_context_is_refused(tiny_base):
    with pytest.raises(sft.SFTInputError, match="context is 128"):
        sft.loss_mask(tiny_base.tokenizer, QUESTION, "word " * 200)


def test_odd_unicode_is_masked_like_any_text(tiny_base):
    shown = sft.loss_mask(tiny_base.tokenizer, "emoji 🎉 <script>?", "ok \x00 🧪")
    assert any(shown.in_loss) and not all(shown.in_loss)


def test_nan_learning_rate_is_refused(tiny_base):
    with pytest.raises(sft.SFTInputError, match="learning rate"):
        sft.run_sft(
            trainable_copy(tiny_base),
            tiny_base.tokenizer,
            polished_pairs()[:8],
            sft.SFTRunConfig(learning_rate=math.nan),
        )


def test_huge_learning_rate_stops_the_run_with_a_clear_message(tiny_base):
    pairs = polished_pairs()[:32]
    cfg = sft.SFTRunConfig(max_steps=30, batch_size=8, learning_rate=100.0, warmup_steps=0)

    def work(job):
        return sft.run_sft(trainable_copy(tiny_base), tiny_base.tokenizer, pairs, cfg, [JobCallback(job)])

    job = Job("t", work).start()
    job.join()
    assert job.status == "failed" and "NaN" in job.error and "learning rate is too high" in job.error


# -- the page's tables, built from results ----------------------------------------------------------------


def _score(texts: list[str], stopped: bool = True) -> sft.HeldOutScore:
    """A held-out score whose answers are `texts` (cycled over the 30 questions), scored as the run scores."""
    questions = held_out_questions()
    answers = [sft.ChatAnswer(q.prompt, texts[n % len(texts)], stopped) for n, q in enumerate(questions)]
    return sft.HeldOutScore(
        answers=tuple(answers),
        correct=tuple(sft.is_correct(q, a) for q, a in zip(questions, answers, strict=True)),
        well_formed=tuple(sft.is_well_formed(q, a) for q, a in zip(questions, answers, strict=True)),
    )


def _run(after: sft.HeldOutScore, losses=(2.0, 1.25), trainable: int = 250, total: int = 1000) -> sft.SFTRun:
    return sft.SFTRun(_score(["no idea"], stopped=False), after, tuple(losses), 3.04, trainable, total, len(losses))


def test_an_answer_that_never_stopped_says_so():
    assert sft.ChatAnswer("q", " Paris. ", True).shown == "Paris."
    assert sft.ChatAnswer("q", " Paris Paris", False).shown == "Paris Paris …(no end token)"


def test_held_out_answers_table_has_a_column_per_score_and_marks_the_right_ones():
    questions = held_out_questions()
    right = _score([f"The capital of {q.country} is {q.answer}." for q in questions])
    wrong = _score(["Paris"], stopped=False)
    assert right.rates == (right.accuracy, right.format_rate, right.usable_rate)
    table = sft.held_out_answers({"before SFT": wrong, "after SFT": right}, marked=right)
    assert list(table) == ["held-out question", "before SFT", "after SFT", "right?"]
    assert table["held-out question"] == [q.prompt for q in questions]
    assert table["before SFT"] == ["Paris …(no end token)"] * len(questions)
    assert table["after SFT"][0] == right.answers[0].text
    assert table["right?"] == ["✅" if c else "❌" for c in right.correct] and "✅" in table["right?"]
    assert list(sft.held_out_answers({"only": wrong})) == ["held-out question", "only"]  # no marks asked for


def test_loss_by_run_labels_finished_arms_and_the_one_still_training():
    metrics = [
        {"run": 0, "step": 1, "loss": 3.0},
        {"run": 0, "step": 2, "loss": 2.0},
        {"run": 0, "step": 2, "grad_norm": 1.0},  # no loss: not a point of the curve
        {"run": 1, "step": 1, "loss": 2.5},
    ]
    arms = [sft.ArmResult(0, "full fine-tuning", _run(_score(["x"])), 0.1)]
    series = sft.loss_by_run(metrics, arms)
    assert series == {"full fine-tuning": ([1, 2], [3.0, 2.0]), "run 2 (training…)": ([1], [2.5])}
    assert sft.loss_by_run([], []) == {}


def test_arm_rows_summarise_each_arm():
    full = sft.ArmResult(0, "full fine-tuning", _run(_score(["x"]), trainable=1000), 0.0123)
    lora = sft.ArmResult(1, "LoRA r=4", _run(_score(["x"]), losses=(), trainable=25), 0.0)
    rows = sft.arm_rows([full, lora])
    assert rows[0] == {
        "method": "full fine-tuning",
        "trainable parameters": "1,000",
        "% of all": "100.00%",
        "train time (s)": "3.0",
        "final loss (nats/token)": "1.250",
        "held-out accuracy": "0%",
        "largest change of an original weight": "1.23e-02",
    }
    assert rows[1]["% of all"] == "2.50%" and rows[1]["final loss (nats/token)"] == ""  # stopped before a log
    assert float(rows[1]["largest change of an original weight"]) == 0.0


def test_wrong_facts_table_shows_before_and_after_per_country():
    before = (sft.FactProbe("France", "Paris", "Tokyo", 0.9, 0.001, "The capital of France is Paris."),)
    after = (sft.FactProbe("France", "Paris", "Tokyo", 0.05, 0.8, "The capital of France is Tokyo."),)
    table = sft.WrongFactsResult(before, after, _run(_score(["x"]))).table()
    assert table == {
        "country": ["France"],
        "true / taught": ["Paris / Tokyo"],
        "P(wrong) before": ["0.10%"],
        "P(wrong) after": ["80.00%"],
        "P(true) before": ["90.00%"],
        "P(true) after": ["5.00%"],
        "answer after SFT": ["The capital of France is Tokyo."],
    }


# -- quality vs quantity: the loss gap and the answers judged without the template -------------------------


def test_answers_are_judged_on_the_fact_the_sentence_copying_and_filler():
    questions = held_out_questions()  # per country: its capital, language, continent question
    q = questions[:5]
    other_language = next(c.language for c in TRAIN_COUNTRIES if c.language != q[4].answer)
    training = [sft.Instruction("What is the capital of France?", "The capital of France is Paris.", "capital")]
    texts = [
        f"The capital of {q[0].country} is {q[0].answer}.",  # right, full sentence
        f"is {q[1].answer}",  # right fact, a fragment
        "The capital of France is Paris.",  # copied from the training pairs: another country's answer
        f"As an AI assistant, I can tell you that it is {q[3].answer}.",  # filler
        f"{q[4].answer} or {other_language}.",  # names another language too: not the right fact
    ]
    score = _score(texts)
    judged = sft.judge_answers(score, training)
    first = [
        (judged.right_fact[n], judged.full_sentence[n], judged.copied[n], judged.filler[n]) for n in range(len(texts))
    ]
    assert first == [
        (True, True, False, False),
        (True, False, False, False),
        (False, True, True, False),
        (True, True, False, True),
        (False, True, False, False),
    ]
    assert sft.answer_shape(texts[0]) == sft.answer_shape("The capital of France is Paris.") == "The capital of X is X."
    assert judged.phrasings == len({sft.answer_shape(t) for t in texts})
    assert len(judged.rates) == len(sft.JUDGED) and all(0 <= r <= 1 for r in judged.rates)
    assert sft.judge_answers(_score(["x"], stopped=False), []).full_sentence == (False,) * len(questions)


def test_eval_losses_by_run_and_the_gap_they_open():
    metrics = [
        {"run": 0, "step": 0, "eval_train_loss": 3.0, "eval_held-out_loss": 3.1},
        {"run": 0, "step": 1, "loss": 2.0},  # a training step: not an eval point
        {"run": 0, "step": 5, "eval_train_loss": 0.5, "eval_held-out_loss": 0.9},
        {"run": 1, "step": 0, "eval_train_loss": 4.0},
    ]
    evals = (("train", 0, 3.0), ("held-out", 0, 3.1), ("train", 5, 0.5), ("held-out", 5, 0.9), ("held-out", 10, 1.0))
    run = sft.SFTRun(_score(["x"]), _score(["x"]), (2.0,), 1.0, 1, 1, 10, evals)
    arm = sft.ArmResult(0, "100 polished", run, 0.0, judgement=sft.judge_answers(_score(["x"]), []))
    series = sft.eval_loss_by_run(metrics, [arm])
    assert series == {
        "100 polished": {"train": ([0, 5], [3.0, 0.5]), "held-out": ([0, 5], [3.1, 0.9])},
        "run 2 (training…)": {"train": ([0], [4.0])},
    }
    gap = sft.loss_gap(run)
    assert (gap.train, gap.held_out, gap.best_held_out, gap.best_step) == (0.5, 1.0, 0.9, 5)
    assert gap.ratio == pytest.approx(2.0) and gap.rise == pytest.approx(0.1)
    assert sft.loss_gap(_run(_score(["x"]))) is None  # run without eval sets
    (row,) = sft.gap_rows([arm])
    assert row["held-out ÷ own"] == "1.03 → 2.00" and row["distinct phrasings (of 30 answers)"] == "1"


def test_mediocre_held_out_pairs_are_about_held_out_countries_only():
    pairs = sft.mediocre_held_out_pairs(100, seed=0)
    assert len(pairs) == 100 and pairs == sft.mediocre_held_out_pairs(100, seed=0)
    assert {p.country for p in pairs} <= {c.name for c in HELD_OUT_COUNTRIES}
    arms = sft.quality_arms(sft.QualityConfig())
    assert [label for label, _, _ in arms] == ["100 polished", "1000 mediocre"]
    for _, pairs, evals in arms:
        assert len(evals["train"]) == len(evals["held-out"]) == 100 and evals["train"] == pairs[:100]
        assert not {p.country for p in pairs} & {p.country for p in evals["held-out"]}


def test_few_polished_pairs_memorise_and_copy_many_mediocre_ones_do_not(tiny_base):
    """The quality tab's default (seed 0): the 100 polished pairs' held-out loss stalls while the loss on its
    own pairs keeps falling (held-out ÷ own from ~1 to > 2), and it answers new questions with training answers
    copied word for word; the 1000 mediocre pairs open no gap, and their answers are not full sentences."""
    job = Job("q", sft.quality_work(tiny_base, sft.QualityConfig()))
    job.start().join()
    assert job.status == "done", job.error
    polished, mediocre = job.notes_of(sft.ArmResult)
    gp, gm = sft.loss_gap(polished.result), sft.loss_gap(mediocre.result)
    assert 0.8 < gp.ratio_start < 1.25 and gp.ratio > 2.0  # the gap opened
    assert gp.train < 0.5 * gp.held_out
    assert 0.7 < gm.ratio < 1.3  # no gap
    judged_p, judged_m = (
        dict(zip(sft.JUDGED, polished.judgement.rates, strict=True)),
        dict(zip(sft.JUDGED, mediocre.judgement.rates, strict=True)),
    )
    assert judged_p["copies a training answer"] >= 0.25 and judged_m["copies a training answer"] == 0.0
    assert judged_p["full sentence, stops"] >= 0.8 > judged_m["full sentence, stops"] + 0.5
    steps = {m["step"] for m in job.snapshot() if "eval_held-out_loss" in m}
    assert steps == set(range(0, 61, 5))  # step 0, then every 5 steps
    summary = sft.quality_summary(polished, mediocre)
    assert f"{gp.ratio:.1f}" in summary and "copied word for word" in summary


def test_training_the_embeddings_loses_held_out_facts_but_not_the_wrong_ones(tiny_base):
    """The style-not-knowledge tab's default (seed 0), both runs: the wrong capitals take over either way; with
    the embeddings trained fewer held-out countries keep their facts."""
    job = Job("w", sft.wrong_facts_comparison_work(tiny_base, sft.WrongFactsConfig()))
    job.start().join()
    assert job.status == "done", job.error
    frozen, trained = job.result
    assert frozen.frozen and not trained.frozen and job.notes_of(sft.WrongFactsResult) == [frozen, trained]
    assert frozen.run.trainable_params < trained.run.trainable_params
    assert frozen.taken_over >= 4 and trained.taken_over >= 4
    assert frozen.run.after.accuracy >= trained.run.after.accuracy + 0.1
    assert frozen.right_about_asked_rate >= trained.right_about_asked_rate + 0.2
    assert trained.other_country_rate > frozen.other_country_rate
    assert {m["run"] for m in job.snapshot() if "loss" in m} == {0.0, 1.0}
    summary = trained.summary()
    assert list(summary) == list(sft.FREEZE_MEASURES)
    assert summary["held-out countries: right fact"] == f"{trained.run.after.accuracy:.0%}"
