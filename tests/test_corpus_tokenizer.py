"""The generated corpus is deterministic and the bundled tokenizer round-trips any text."""

import pytest

from llmlab.corpus import COUNTRIES, EOS, generate_corpus, generate_documents


def test_corpus_is_deterministic_for_a_seed_and_differs_across_seeds():
    assert generate_corpus(seed=3, n_documents=500) == generate_corpus(seed=3, n_documents=500)
    assert generate_corpus(seed=3, n_documents=500) != generate_corpus(seed=4, n_documents=500)


def test_corpus_has_every_kind_of_document_and_every_capital():
    text = generate_corpus(seed=0)
    assert text.count(EOS) == len(generate_documents(seed=0))
    assert "Once upon a time" in text and "def " in text and " + " in text and "Q: " in text
    for country in COUNTRIES:
        assert f"The capital of {country.name} is {country.capital}." in text


def test_capital_facts_are_all_true():
    text = generate_corpus(seed=0)
    for country in COUNTRIES:
        for other in COUNTRIES:
            if other.capital != country.capital and other.capital not in country.capital:
                assert f"The capital of {country.name} is {other.capital}." not in text


@pytest.mark.parametrize(
    "text",
    ["The capital of France is Paris.", "emoji 🎉🧪 and accents: héllo wörld", "control \x00\x07 chars\ttab\n", ""],
)
def test_bundled_tokenizer_round_trips(tiny_base, text):
    tokenizer = tiny_base.tokenizer
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_tokenizer_training_is_deterministic():
    from llmlab.tokenizer import train_tokenizer

    text = generate_corpus(seed=0, n_documents=800)
    assert train_tokenizer(text, 600).get_vocab() == train_tokenizer(text, 600).get_vocab()


def test_chat_template_matches_the_card_format(tiny_base):
    rendered = tiny_base.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}], tokenize=False
    )
    assert rendered == "<|user|>Hi?<|assistant|>Hello.<|endoftext|>"
