"""Temperature, top-k and top-p on logits, and prompt handling."""

import pytest
import torch

from llmlab.nexttoken import PromptError, encode_prompt, sampling_distribution, top_tokens

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])


@pytest.mark.parametrize("temperature", [0.05, 0.7, 1.0, 5.0])
@pytest.mark.parametrize("top_k", [0, 1, 3, 100])
@pytest.mark.parametrize("top_p", [0.0, 0.5, 0.9, 1.0])
def test_sampling_distribution_sums_to_one(temperature, top_k, top_p):
    probs = sampling_distribution(LOGITS, temperature, top_k, top_p)
    assert probs.dtype == torch.float64 and float(probs.sum()) == pytest.approx(1.0)
    assert (probs >= 0).all()


def test_top_k_one_is_argmax_and_top_p_zero_keeps_one_token():
    assert sampling_distribution(LOGITS, 1.0, top_k=1).argmax() == 0
    assert (sampling_distribution(LOGITS, 1.0, top_k=1) > 0).sum() == 1
    assert (sampling_distribution(LOGITS, 1.0, top_p=0.0) > 0).sum() == 1


def test_top_k_larger_than_vocab_keeps_all_and_matches_softmax():
    assert torch.allclose(sampling_distribution(LOGITS, 1.0, top_k=10_000), torch.softmax(LOGITS.double(), -1))


def test_temperature_sharpens_and_flattens():
    cold, hot = sampling_distribution(LOGITS, 0.1), sampling_distribution(LOGITS, 5.0)
    assert cold.max() > torch.softmax(LOGITS, -1).max() > hot.max()


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.softmax(LOGITS, -1)  # [0.55, 0.20, 0.12, 0.07, ...]
    kept = sampling_distribution(LOGITS, 1.0, top_p=0.7) > 0
    assert kept.tolist() == [True, True, False, False, False, False]
    assert probs[:1].sum() < 0.7 <= probs[:2].sum()


def test_nonpositive_temperature_is_refused():
    with pytest.raises(ValueError):
        sampling_distribution(LOGITS, 0.0)


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt_is_a_prompt_error(tiny_base, prompt):
    with pytest.raises(PromptError):
        encode_prompt(tiny_base.tokenizer, prompt, 128)


def test_long_prompt_keeps_its_last_tokens(tiny_base):
    tokens = encode_prompt(tiny_base.tokenizer, "word " * 5000, 128)
    assert len(tokens.ids) == 128 and tokens.truncated > 0


def test_emoji_pieces_are_readable_bytes_not_replacement_characters(tiny_base):
    tokens = encode_prompt(tiny_base.tokenizer, "Hi 🎉", 128)
    assert all("\ufffd" not in piece for piece in tokens.pieces)
    assert any(piece.startswith("\\x") for piece in tokens.pieces)


def test_top_tokens_are_sorted(tiny_base):
    tops = top_tokens(torch.softmax(LOGITS, -1), tiny_base.tokenizer, 4)
    assert [t.token_id for t in tops] == [0, 1, 2, 3]


def test_sequence_logps_is_the_sum_of_each_answer_tokens_log_probability(tiny_base):
    """One implementation for DPO's implicit reward and the RLHF sweep's π_ref(y): checked against a direct,
    unbatched computation, for answers of different lengths batched together (padding must not leak in)."""
    import torch.nn.functional as F

    from llmlab.nexttoken import sequence_logps

    tok, model = tiny_base.tokenizer, tiny_base.model
    prompt = tok("The capital of France is", add_special_tokens=False)["input_ids"]
    answers = [tok(a, add_special_tokens=False)["input_ids"] for a in (" Paris", " Rome.", " a city in Europe.")]
    got = sequence_logps(model, [prompt] * 3, answers, pad_id=tok.pad_token_id, batch_size=2)
    for value, answer in zip(got, answers, strict=True):
        ids = torch.tensor([prompt + answer])
        logp = F.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)  # (T-1, V): position t predicts t+1
        direct = sum(float(logp[len(prompt) - 1 + k, token]) for k, token in enumerate(answer))
        assert float(value) == pytest.approx(direct, abs=1e-4)
    assert got[0] > got[1]  # " Paris" is the likely answer


def test_sampling_summary_says_what_the_filters_left_and_what_temperature_does():
    from llmlab.nexttoken import sampling_summary

    assert sampling_summary(LOGITS, 1.0, 0, 1.0) == (
        f"6 of 6 tokens can be sampled; the {carrying(LOGITS, 1.0)} most likely carry 99% of the probability."
    )
    assert sampling_summary(LOGITS, 1.0, 0, 0.0) == (
        "1 of 6 tokens can be sampled; the top token alone carries 99%; "
        "top-p 0 keeps only the most likely token: sampling becomes greedy."
    )
    assert "so top-k removes nothing" in sampling_summary(LOGITS, 1.0, 6, 1.0)
    # Temperature removes no token; it changes how few carry the probability. Far below 1, the top token's
    # rivals round to 0, and still count as kept: the filters, not rounding, say what can be sampled.
    cold = sampling_summary(LOGITS * 1000, 0.05, 0, 1.0)
    assert cold.startswith("6 of 6 tokens can be sampled; the top token alone")
    assert (sampling_distribution(LOGITS * 1000, 0.05) > 0).sum() == 1
    assert carrying(LOGITS, 5.0) > carrying(LOGITS, 1.0) > carrying(LOGITS, 0.05) == 1


def carrying(logits, temperature) -> int:
    """How many of the most likely tokens it takes to reach 99% of the probability (by hand)."""
    probs = sorted(torch.softmax(logits.double() / temperature, -1).tolist(), reverse=True)
    total, n = 0.0, 0
    while total < 0.99:
        total, n = total + probs[n], n + 1
    return n


def test_top_tokens_can_add_a_rare_token_at_the_end(tiny_base):
    probs = torch.softmax(LOGITS, dim=-1)
    tops = top_tokens(probs, tiny_base.tokenizer, 2, also=5)
    assert [t.token_id for t in tops] == [0, 1, 5] and tops[-1].prob == pytest.approx(float(probs[5]))
    assert [t.token_id for t in top_tokens(probs, tiny_base.tokenizer, 2, also=1)] == [0, 1]  # already shown
