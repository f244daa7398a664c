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
