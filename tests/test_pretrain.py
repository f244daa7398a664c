"""Pre-training core: the loop learns, the live worker logs and probes, the data-quality experiment."""

import math
import threading

import numpy as np
import pytest
import torch

from llmlab import dataquality
from llmlab.corpus import COUNTRIES, generate_documents
from llmlab.jobs import DivergedError, Job
from llmlab.pretrain import (
    PretrainConfig,
    Probe,
    ProbeConfig,
    ProbeStart,
    Samples,
    TinyGPTConfig,
    corpus_ids,
    encode_corpus,
    expected_answer,
    leader_lines,
    learning_rate_at,
    live_pretraining,
    new_model,
    pretrain,
    top1_since,
)

LIES = ("repeated_lie", "random_capital")
SMALL = TinyGPTConfig(n_embd=64, n_layer=2, n_head=2, n_positions=64)  # for the slower experiments


@pytest.fixture(scope="module")
def tokenizer(tiny_base):
    return tiny_base.tokenizer


@pytest.fixture(scope="module")
def ids(tokenizer):
    return corpus_ids(tokenizer)


def test_new_model_has_tiny_base_shape_and_our_special_tokens(tokenizer, tiny_base):
    model = new_model(tokenizer, TinyGPTConfig(), seed=0)
    assert sum(p.numel() for p in model.parameters()) == tiny_base.n_params
    assert model.config.eos_token_id == tokenizer.eos_token_id != 50256
    assert model.config.vocab_size == len(tokenizer)
    again = new_model(tokenizer, TinyGPTConfig(), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))


def test_corpus_ids_are_the_encoded_corpus_and_cached(tokenizer, ids):
    assert corpus_ids(tokenizer) is ids
    head = "".join(d + "<|endoftext|>\n" for d in generate_documents(0)[:20])
    assert ids[: len(encode_corpus(tokenizer, head)) - 1].tolist() == encode_corpus(tokenizer, head)[:-1].tolist()


def test_pretrain_lowers_the_loss_and_changes_every_parameter(tokenizer, ids):
    model = new_model(tokenizer, TinyGPTConfig(), seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = pretrain(model, ids, PretrainConfig(steps=30, batch_size=8, warmup_steps=5))
    assert [m.step for m in history] == list(range(1, 31))
    assert history[0].loss == pytest.approx(math.log(len(tokenizer)), abs=0.5)  # a random model: ~ln V
    assert sum(m.loss for m in history[-5:]) / 5 < history[0].loss - 1.0
    for name, param in model.named_parameters():
        assert not torch.equal(param, before[name]), name
    assert not model.training


def test_stop_event_ends_the_run_early(tokenizer, ids):
    stop = threading.Event()
    model = new_model(tokenizer, SMALL, seed=0)
    history = pretrain(
        model, ids, PretrainConfig(steps=500, batch_size=4), on_step=lambda m, _: m.step == 3 and stop.set(), stop=stop
    )
    assert len(history) == 3


def test_huge_learning_rate_is_a_clear_error_not_nan_weights(tokenizer, ids):
    model = new_model(tokenizer, SMALL, seed=0)
    with pytest.raises(DivergedError, match="learning rate"):
        pretrain(model, ids, PretrainConfig(steps=200, batch_size=4, learning_rate=1e6, warmup_steps=1))


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    config = PretrainConfig(steps=100, learning_rate=1e-2, warmup_steps=10)
    assert learning_rate_at(0, config) == pytest.approx(1e-3)
    assert learning_rate_at(9, config) == pytest.approx(1e-2)
    assert learning_rate_at(99, config) == pytest.approx(1e-3, rel=0.05)


def test_expected_answer_knows_the_capital_probes():
    assert expected_answer("The capital of France is") == " Paris"
    assert expected_answer("  The capital of the Netherlands is ") == " Amsterdam"
    assert expected_answer("Once upon a time") is None


def test_live_worker_logs_every_step_and_probes_every_few(tokenizer):
    probe = ProbeConfig(every=5, sample_every=10, sample_prompts=("Once upon a time",), sample_tokens=4)
    config = PretrainConfig(steps=22, batch_size=8, warmup_steps=5)
    job = Job("test-live", lambda job: live_pretraining(job, tokenizer, config, probe)).start()
    job.join(timeout=120)
    assert job.status == "done", job.error
    assert [m["step"] for m in job.metrics] == list(range(1, 23))
    assert job.metrics[-1]["tokens"] == 22 * 8 * 32
    assert job.notes[0] == ProbeStart(probe.prompt, " Paris", len(tokenizer))
    probes = job.notes_of(Probe)
    assert [p.step for p in probes] == [0, 5, 10, 15, 20, 22]  # and the last step
    for p in probes:
        assert p.probs.shape == (len(tokenizer),) and p.probs.sum() == pytest.approx(1, abs=1e-4)
    samples = job.notes_of(Samples)
    assert [s.step for s in samples] == [0, 10, 20, 22]
    assert all(t.startswith("Once upon a time") for s in samples for t in s.texts)
    # The probe reads the same model the loop trains: its distribution changed from the uniform-ish start.
    assert probes[-1].probs.max() > 5 * probes[0].probs.max()
    assert not job.result.training


# -- data quality ---------------------------------------------------------------------------------------


def test_corruptions_do_what_they_say():
    import random

    doc = "The capital of France is Paris. New Delhi is the capital of India. Tom liked to read books."
    rng = random.Random(0)
    wrong = dataquality.corrupt_document(doc, "random_capital", rng)
    assert "Paris" not in wrong and "New Delhi" not in wrong and wrong.endswith("Tom liked to read books.")
    lie = dataquality.corrupt_document(doc, "repeated_lie", rng)
    assert lie == dataquality.corrupt_document(doc, "repeated_lie", rng)  # the same lie every time
    assert "Paris" not in lie
    shuffled = dataquality.corrupt_document(doc, "shuffled_words", rng)
    assert sorted(shuffled.split()) == sorted(doc.split()) and shuffled != doc
    with pytest.raises(ValueError):
        dataquality.corrupt_document(doc, "nonsense", rng)


@pytest.mark.parametrize("noise", [0.0, 0.3, 1.0])
def test_corrupt_documents_changes_the_requested_fraction(noise):
    docs = generate_documents(0, 400)
    noisy, chosen = dataquality.corrupt_documents(docs, noise, "shuffled_words", seed=1)
    assert len(chosen) == round(noise * len(docs))
    changed = {i for i, (a, b) in enumerate(zip(docs, noisy, strict=True)) if a != b}
    assert changed <= set(chosen) and len(changed) >= 0.95 * len(chosen)
    with pytest.raises(ValueError):
        dataquality.corrupt_documents(docs, 1.5, "shuffled_words")


def test_noisy_corpus_at_zero_noise_is_the_clean_corpus(tokenizer):
    ids = dataquality.noisy_corpus_ids(tokenizer, 0.0, "random_capital", n_documents=300)
    text = "".join(d + "<|endoftext|>\n" for d in generate_documents(0, 300))
    assert ids.tolist() == encode_corpus(tokenizer, text).tolist()
    noisy = dataquality.noisy_corpus_ids(tokenizer, 0.5, "random_capital", n_documents=300)
    assert noisy.tolist() != ids.tolist()


def test_more_noise_gives_a_higher_loss_on_a_short_run(tokenizer):
    config = dataquality.NoiseConfig(
        kind="shuffled_words", steps=40, batch_size=16, warmup_steps=5, model=SMALL, n_documents=1_500
    )
    seen = []
    results = dataquality.noise_experiment(tokenizer, [0.0, 0.8], config, on_result=seen.append)
    assert seen == results and [r.noise for r in results] == [0.0, 0.8]
    clean, noisy = results
    assert noisy.clean_loss > clean.clean_loss + 0.05
    assert noisy.train_loss > clean.train_loss
    assert 0 < clean.p_correct < 1 and 0 <= clean.capitals_right <= len(COUNTRIES)
    assert len(clean.losses) == 40


def test_noise_experiment_stops_when_asked(tokenizer):
    stop = threading.Event()
    config = dataquality.NoiseConfig(steps=50, batch_size=4, model=SMALL, n_documents=300)
    results = dataquality.noise_experiment(
        tokenizer, [0.0, 0.5], config, on_step=lambda level, m: m.step == 2 and stop.set(), stop=stop
    )
    assert results == []


def test_precomputed_results_cover_every_kind_level_and_seed():
    saved = dataquality.load_precomputed()
    assert saved is not None, "run: python -m llmlab.dataquality"
    assert set(saved["results"]) == set(dataquality.KINDS)
    for kind, rows in saved["results"].items():
        seeds = sorted({r.get("seed", 0) for r in rows})
        for seed in seeds:
            assert [r["noise"] for r in rows if r.get("seed", 0) == seed] == saved["levels"]
        assert all(0 <= r["p_correct"] <= 1 and r["clean_loss"] > 0 for r in rows)
        if kind != "shuffled_words":  # the two fact corruptions: several seeds, the wrong capitals measured
            assert len(seeds) >= 3
            assert all(0 <= r["p_wrong_each"] <= r["p_top_wrong"] <= 1 and 0 <= r["p_lie"] <= 1 for r in rows)


def test_the_lie_is_one_fixed_wrong_capital_per_country():
    capitals = [c.capital for c in COUNTRIES]
    lies = [dataquality.lie_of(c) for c in capitals]
    assert sorted(lies) == sorted(capitals) and all(lie != c for lie, c in zip(lies, capitals, strict=True))


def test_capital_beliefs_on_the_bundled_base_model(tiny_base):
    """tiny-base was trained on clean facts: the right capital leads, the lie is one unremarkable wrong capital."""
    beliefs = dataquality.capital_beliefs(tiny_base.model, tiny_base.tokenizer)
    assert beliefs.p_right > 0.5 and beliefs.right_top1 >= 35
    assert beliefs.lie_top1 == 0 and beliefs.p_lie < 0.05
    assert beliefs.p_wrong_each <= beliefs.p_top_wrong < beliefs.p_right
    assert dataquality.capital_knowledge(tiny_base.model, tiny_base.tokenizer) == (beliefs.p_right, beliefs.right_top1)


@pytest.mark.slow
def test_a_repeated_lie_is_learned_where_random_noise_is_outvoted(tokenizer):
    """The card's "frequency wins", on freshly pre-trained models at the tab's defaults (300 steps, seed 0; ~25 s
    each on 2 cores): with half the documents corrupted, the same wrong capital every time takes as large a share
    of the probability as the truth, while random wrong capitals at the same rate stay far below it, the likeliest
    of them included. (150 steps were too few: no capital was learned at all.)"""
    runs = {kind: dataquality.noise_run(tokenizer, 0.5, dataquality.NoiseConfig(kind=kind)) for kind in LIES}
    lie, noise = runs["repeated_lie"], runs["random_capital"]
    assert lie.p_lie > 3 * noise.p_top_wrong and lie.p_lie > 8 * noise.p_wrong_each
    assert lie.p_lie > 0.5 * lie.p_correct  # about as likely as the truth: each is in half the documents
    assert lie.lie_top1 >= 10  # and the top-1 answer for many countries
    assert noise.lie_top1 <= 2  # under noise the "lie" capital is just one wrong capital among 39


def test_saved_runs_spread_over_seeds_and_the_lie_overtakes_the_truth():
    saved = dataquality.load_saved_runs()
    assert saved is not None and saved.steps == 300
    points = saved.spread("repeated_lie", "p_lie")
    assert [p.noise for p in points] == saved.levels("repeated_lie")
    assert all(p.low <= p.mean <= p.high and p.n_seeds == len(saved.seeds("repeated_lie")) for p in points)
    crossing = dataquality.lie_overtakes(saved)
    assert crossing is not None and 0.3 <= crossing[1] <= 0.7
    fig = dataquality.beliefs_figure(saved, "title", 0.3).to_plotly_json()
    assert [t["name"] for t in fig["data"]] == [line[2] for line in dataquality.BELIEF_LINES]
    assert fig["layout"]["xaxis"]["title"]["text"] and fig["layout"]["yaxis"]["title"]["text"]


def test_leader_lines_and_top1_since_follow_the_probes():
    def probe(step, probs):
        return Probe(step, np.array(probs, dtype="float32"))

    probes = [
        probe(0, [0.5, 0.3, 0.2]),
        probe(5, [0.2, 0.6, 0.2]),
        probe(10, [0.1, 0.2, 0.7]),
        probe(15, [0.1, 0.1, 0.8]),
    ]
    assert leader_lines(probes) == {
        0: pytest.approx([0.5, 0.2, 0.1, 0.1]),
        1: pytest.approx([0.3, 0.6, 0.2, 0.1]),
        2: pytest.approx([0.2, 0.2, 0.7, 0.8]),
    }
    assert list(leader_lines(probes, last=1)) == [2]
    assert list(leader_lines(probes[:1], also=2)) == [0, 2]  # the answer is tracked before it leads
    assert top1_since(probes, 2).step == 10  # the top-1 from step 10 to the end
    assert top1_since(probes, 1) is None  # the top-1 once, not now


def test_saved_noise_runs_load_typed_and_find_the_nearest_level():
    saved = dataquality.load_saved_runs()
    assert saved is not None and saved.steps == 300
    nearest, clean = saved.nearest("repeated_lie", 0.27)
    assert nearest.noise == 0.3 and clean.noise == 0.0 and nearest.kind == "repeated_lie"
    assert isinstance(nearest, dataquality.NoiseResult) and nearest.seed == 0 and nearest.steps == 300
