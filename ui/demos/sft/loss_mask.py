"""Loss mask: one instruction-response pair in the model's chat template, as token chips coloured by trl's own
mask (`labels != -100`), each with its loss; the mean loss on the response only vs on every token
(llmlab.sft.loss_mask, token_losses)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import plots, sft
from llmlab.instructions import examples_by_kind
from llmlab.modeling import LoadedModel
from llmlab.nexttoken import context_limit
from ui.frame import chart, setup
from ui.models import shared_model
from ui.settings import SELECTBOX, SettingsForm, option
from ui.text import md_escape
from ui.tokens import token_chips

IN_LOSS = "rgba(245,133,24,.40)"  # plots.HIGHLIGHT, light: the token counts in the loss
NOT_IN_LOSS = "rgba(154,165,177,.15)"
CUSTOM = "Type your own…"
EXAMPLES = examples_by_kind()  # label -> pair (~1 ms)
PROMPT_KEY, RESPONSE_KEY = "sft_mask_prompt", "sft_mask_response"
CODE = """trainer = SFTTrainer(model=model, processing_class=tokenizer,
                     args=SFTConfig(completion_only_loss=True, ...),
                     train_dataset=Dataset.from_list([{
                         "prompt": [{"role": "user", "content": instruction}],
                         "completion": [{"role": "assistant", "content": response}]}]))
batch = trainer.data_collator([trainer.train_dataset[0]])
in_loss = batch["labels"][0] != -100                     # the orange chips
logits = model(batch["input_ids"]).logits                # (1, T, V)
per_token = F.cross_entropy(logits[0, :-1], batch["input_ids"][0, 1:], reduction="none")
loss = per_token[in_loss[1:]].mean()                     # what SFTTrainer minimises"""


@dataclass(frozen=True)
class MaskSettings:
    example: str = option(
        "Example from the training set", next(iter(EXAMPLES)), choices=(*EXAMPLES, CUSTOM), widget=SELECTBOX,
        help="Every pair is generated from the corpus's facts (llmlab/instructions.py).",
    )  # fmt: skip
    every_token: bool = option(
        "Loss on every token (prompt too)", False,
        help="trl's completion_only_loss=False: the model is also trained to predict the question.",
    )  # fmt: skip


@st.cache_data(max_entries=256, show_spinner=False)
def cached_mask(model_name: str, device: str, prompt: str, response: str, completion_only: bool) -> sft.MaskedExample:
    """trl's own preparation + collator for one example (~0.3 s), cached per text. Raises SFTInputError."""
    shared = shared_model(model_name, device)
    return sft.loss_mask(shared.tokenizer, prompt, response, completion_only, context_limit(shared.model))


def _fill_example(key: str) -> None:
    """The example box's on_change: put the chosen pair into the two text boxes (custom text stays as typed)."""
    choice = st.session_state[key]
    if choice != CUSTOM:
        st.session_state[PROMPT_KEY] = EXAMPLES[choice].prompt
        st.session_state[RESPONSE_KEY] = EXAMPLES[choice].response


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(MaskSettings, "sft_mask_")
    choice = form.widget("example", on_change=_fill_example, args=(form.key("example"),))
    first = EXAMPLES.get(choice, next(iter(EXAMPLES.values())))  # a link may name an example
    st.session_state.setdefault(PROMPT_KEY, first.prompt)
    st.session_state.setdefault(RESPONSE_KEY, first.response)
    with setup("Edit the example's text"):
        c1, c2 = st.columns(2)
        prompt = c1.text_area("Instruction (the user's turn)", key=PROMPT_KEY, height=90, max_chars=2000)
        response = c2.text_area("Response (the assistant's turn)", key=RESPONSE_KEY, height=90, max_chars=2000)
    every_token = form.widget("every_token")
    form.done()
    try:
        response_only = cached_mask(loaded.name, loaded.device, prompt, response, True)
        all_tokens = cached_mask(loaded.name, loaded.device, prompt, response, False)
    except sft.SFTInputError as err:
        st.info(str(err), icon="✍️")
        return
    on_response = sft.token_losses(loaded.model, response_only)
    on_all = sft.token_losses(loaded.model, all_tokens)
    shown, losses = (all_tokens, on_all) if every_token else (response_only, on_response)
    st.caption(
        f"The training text in {md_escape(loaded.name)}'s chat template, {len(shown.ids)} tokens. "
        "Orange = counted in the loss: the mask is trl's own, `trainer.data_collator([row])['labels'] != -100`."
    )
    token_chips(
        shown.pieces,
        shown.ids,
        backgrounds=[IN_LOSS if c else NOT_IN_LOSS for c in shown.in_loss],
        titles=[
            f"label {label}" + ("" if math.isnan(x) else f" · loss {x:.3f} nats")
            for label, x in zip(shown.labels, losses.per_token, strict=True)
        ],
    )
    mean_response, mean_all = on_response.mean, on_all.mean
    n_response, n_all = sum(on_response.counted), sum(on_all.counted)
    m1, m2, m3 = st.columns(3)
    m1.metric("Loss, response only", f"{mean_response:.3f}", help=f"mean over {n_response} tokens, nats/token")
    m2.metric("Loss, every token", f"{mean_all:.3f}", help=f"mean over {n_all} tokens, nats/token")
    m3.metric("Difference", f"{mean_all - mean_response:+.3f}", help="every token minus response only")
    st.markdown(
        f"Counting every token changes this example's loss from **{mean_response:.3f}** to **{mean_all:.3f}** "
        f"nats/token ({mean_all - mean_response:+.3f}): the {n_all - n_response} prompt tokens would be trained "
        "too, so the model would spend its updates learning to *write questions* instead of answering them."
    )
    chart(
        plots.token_loss_bars(
            shown.pieces,
            losses.per_token,
            shown.in_loss,
            title=f"Per-token loss of {loaded.name} on this example (orange = in the loss)",
        ),
        key="sft_mask_chart",
    )
    with st.expander("Show the code"):
        st.code(CODE, language="python")
