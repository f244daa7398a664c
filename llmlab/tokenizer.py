"""The bundled models' tokenizer: byte-level BPE trained on the generated corpus with `tokenizers`.

Byte-level means any string can be encoded (emoji and control characters become byte tokens), so the app
never meets an unknown character. Wrapped as a `PreTrainedTokenizerFast` with eos/pad tokens and a chat
template whose assistant turn carries `{% generation %}` tags (trl's `assistant_only_loss` needs them).
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from llmlab.corpus import EOS

PAD = "<|pad|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
SPECIAL_TOKENS = (EOS, PAD, USER, ASSISTANT)

# The card's format: "<|user|>question<|assistant|>answer", answer closed by end-of-text.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{% generation %}"
    "{{ message['content'] }}" + EOS + "{% endgeneration %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def train_tokenizer(text: str, vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `text` (deterministic for a given text) and wrap it for transformers."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Documents are separated by EOS; train on them one by one so no merge crosses a boundary.
    bpe.train_from_iterator(text.split(EOS), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS,
        bos_token=EOS,
        unk_token=None,
        pad_token=PAD,
        additional_special_tokens=[USER, ASSISTANT],
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
