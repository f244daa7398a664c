"""Supervised fine-tuning: the loss mask trl trains with, a live SFTTrainer run, quality vs quantity,
LoRA vs full fine-tuning, and SFT teaching the format rather than the facts. Compute lives in llmlab/sft.py."""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.shell import begin_page, show_advanced

TRY_IT = {
    "sft-q1": "the Style, not knowledge tab: wrong capitals in the data become the likely answer, while "
    "held-out countries keep their pre-trained facts in the new format.",
    "sft-q2": "the Quality vs quantity tab: 100 polished vs 1000 mediocre pairs, same steps.",
    "sft-q3": "the Loss mask tab: the same next-token loss, only the data and the mask change.",
    "sft-q5": "the LoRA vs full tab: trainable parameters, time and result of both.",
}
model_slot = begin_page("Supervised fine-tuning", "✍️")
demo_area = lesson_layout("sft", TRY_IT)

# The card is on screen now. The demo's imports (torch, transformers, trl: seconds on a fresh server) follow.
import dataclasses
import math

import pandas as pd

from llmlab import plots, sft
from llmlab.instructions import (
    HELD_OUT_COUNTRIES,
    WRONG_FACT_COUNTRIES,
    held_out_questions,
    mediocre_pairs,
    polished_pairs,
)
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.nexttoken import context_limit
from ui import urlstate
from ui.frame import demo_tabs, page_frame, shared_model, show_code
from ui.runs import run_panel
from ui.text import md_escape
from ui.tokens import token_chips

IN_LOSS = "rgba(245,133,24,.40)"  # plots.HIGHLIGHT, light: the token counts in the loss
NOT_IN_LOSS = "rgba(154,165,177,.15)"
CUSTOM = "Type your own…"
LEARNING_RATES = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0, 10.0, 100.0)

loaded = page_frame(model_slot)


@st.cache_data
def mask_examples() -> dict:
    """The first training pair of each kind, labelled by its instruction."""
    examples = {}
    for pair in polished_pairs():
        if pair.kind not in {p.kind for p in examples.values()}:
            examples[f"{pair.kind}: {pair.prompt}"] = pair
    return examples


# Every setting round-trips through the URL (?sft_live_steps=100&sft_lora_rank=4 ...): a link reproduces a view.
# Widgets take their value from these keys. Presenter mode hides the advanced ones (live run's samples, learning
# rate and "More settings"; LoRA's learning rate); their values, from the URL or the default, still apply.
RUN, QUALITY = sft.SFTRunConfig(), sft.QualityConfig()
LORA, WRONG = sft.LoraComparisonConfig(), sft.WrongFactsConfig()
MASK_EXAMPLE = urlstate.Param("sft_mask_example", next(iter(mask_examples())), choices=(*mask_examples(), CUSTOM))
MASK_EVERY_TOKEN = urlstate.Param("sft_mask_every_token", False)
LIVE_SAMPLES = urlstate.Param("sft_live_samples", RUN.samples, lo=10, hi=len(polished_pairs()))
LIVE_STEPS = urlstate.Param("sft_live_steps", RUN.max_steps, lo=5, hi=300)
LIVE_LR = urlstate.Param("sft_live_lr", RUN.learning_rate, choices=LEARNING_RATES)
LIVE_COMPLETION_ONLY = urlstate.Param("sft_live_completion_only", RUN.completion_only_loss)
LIVE_FREEZE = urlstate.Param("sft_live_freeze", RUN.freeze_embeddings)
Q_POLISHED = urlstate.Param("sft_q_polished", QUALITY.polished_samples, lo=20, hi=240)
Q_MEDIOCRE = urlstate.Param("sft_q_mediocre", QUALITY.mediocre_samples, lo=100, hi=3000)
Q_STEPS = urlstate.Param("sft_q_steps", QUALITY.max_steps, lo=10, hi=200)
LORA_RANK = urlstate.Param("sft_lora_rank", LORA.lora_rank, lo=1, hi=32)
LORA_STEPS = urlstate.Param("sft_lora_steps", LORA.max_steps, lo=10, hi=200)
LORA_LR = urlstate.Param("sft_lora_lr", LORA.lora_learning_rate, choices=LEARNING_RATES)
WRONG_STEPS = urlstate.Param("sft_wrong_steps", WRONG.max_steps, lo=10, hi=300)
SETTINGS = (
    *(MASK_EXAMPLE, MASK_EVERY_TOKEN, LIVE_SAMPLES, LIVE_STEPS, LIVE_LR, LIVE_COMPLETION_ONLY, LIVE_FREEZE),
    *(Q_POLISHED, Q_MEDIOCRE, Q_STEPS, LORA_RANK, LORA_STEPS, LORA_LR, WRONG_STEPS),
)
urlstate.restore(SETTINGS, "sft_")


def setting(param: urlstate.Param):
    """A setting's current value, whether or not its widget was drawn (presenter mode hides the advanced ones)."""
    return st.session_state[param.key]


def help_of(config: type, name: str) -> str:
    """A config field's help text: the slider says exactly what the code's field says."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(config) if f.name == name)


def lr_slider(label: str, key: str, help: str) -> float:
    return st.select_slider(label, options=LEARNING_RATES, key=key, format_func=lambda x: f"{x:g}", help=help)


# -- 1. chat template and loss mask ----------------------------------------------------------------------


@st.cache_data(max_entries=256, show_spinner=False)
def cached_mask(model_name: str, device: str, prompt: str, response: str, completion_only: bool) -> sft.MaskedExample:
    """trl's own preparation + collator for one example (~0.3 s), cached per text. Raises SFTInputError."""
    shared = shared_model(model_name, device)
    context = context_limit(shared.model)
    return sft.loss_mask(shared.tokenizer, prompt, response, completion_only, context)


def _fill_example() -> None:
    choice = st.session_state["sft_mask_example"]
    if choice != CUSTOM:
        pair = mask_examples()[choice]
        st.session_state["sft_mask_prompt"] = pair.prompt
        st.session_state["sft_mask_response"] = pair.response


def loss_mask_demo(loaded: LoadedModel) -> None:
    examples = mask_examples()
    first = examples.get(setting(MASK_EXAMPLE), next(iter(examples.values())))  # a link may name an example
    st.session_state.setdefault("sft_mask_prompt", first.prompt)
    st.session_state.setdefault("sft_mask_response", first.response)
    st.selectbox(
        "Example from the training set",
        [*examples, CUSTOM],
        key=MASK_EXAMPLE.key,
        on_change=_fill_example,
        help="Every pair is generated from the corpus's facts (llmlab/instructions.py).",
    )
    c1, c2 = st.columns(2)
    prompt = c1.text_area("Instruction (the user's turn)", key="sft_mask_prompt", height=90, max_chars=2000)
    response = c2.text_area("Response (the assistant's turn)", key="sft_mask_response", height=90, max_chars=2000)
    every_token = st.toggle(
        "Loss on every token (prompt too)",
        key=MASK_EVERY_TOKEN.key,
        help="trl's completion_only_loss=False: the model is also trained to predict the question.",
    )
    try:
        response_only = cached_mask(loaded.name, loaded.device, prompt, response, True)
        all_tokens = cached_mask(loaded.name, loaded.device, prompt, response, False)
    except sft.SFTInputError as err:
        st.info(str(err), icon="✍️")
        return
    shown = all_tokens if every_token else response_only
    losses = sft.token_losses(loaded.model, shown)
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
    mean_response = sft.token_losses(loaded.model, response_only).mean
    mean_all = sft.token_losses(loaded.model, all_tokens).mean
    n_response, n_all = sum(response_only.in_loss[1:]), sum(all_tokens.in_loss[1:])
    m1, m2, m3 = st.columns(3)
    m1.metric("Loss, response only", f"{mean_response:.3f}", help=f"mean over {n_response} tokens, nats/token")
    m2.metric("Loss, every token", f"{mean_all:.3f}", help=f"mean over {n_all} tokens, nats/token")
    m3.metric("Difference", f"{mean_all - mean_response:+.3f}", help="every token minus response only")
    st.markdown(
        f"Counting every token changes this example's loss from **{mean_response:.3f}** to **{mean_all:.3f}** "
        f"nats/token ({mean_all - mean_response:+.3f}): the {n_all - n_response} prompt tokens would be trained "
        "too, so the model would spend its updates learning to *write questions* instead of answering them."
    )
    st.plotly_chart(
        plots.token_loss_bars(
            shown.pieces,
            losses.per_token,
            shown.in_loss,
            title=f"Per-token loss of {loaded.name} on this example (orange = in the loss)",
        ),
        key="sft_mask_chart",
    )
    with st.expander("Show the code"):
        st.code(
            """trainer = SFTTrainer(model=model, processing_class=tokenizer,
                     args=SFTConfig(completion_only_loss=True, ...),
                     train_dataset=Dataset.from_list([{
                         "prompt": [{"role": "user", "content": instruction}],
                         "completion": [{"role": "assistant", "content": response}]}]))
batch = trainer.data_collator([trainer.train_dataset[0]])
in_loss = batch["labels"][0] != -100                     # the orange chips
logits = model(batch["input_ids"]).logits                # (1, T, V)
per_token = F.cross_entropy(logits[0, :-1], batch["input_ids"][0, 1:], reduction="none")
loss = per_token[in_loss[1:]].mean()                     # what SFTTrainer minimises""",
            language="python",
        )


# -- 2. live SFT ---------------------------------------------------------------------------------------------


def live_demo(loaded: LoadedModel) -> None:
    c1, c2, c3 = st.columns(3)
    c2.slider(
        "Steps", LIVE_STEPS.lo, LIVE_STEPS.hi, step=5, key=LIVE_STEPS.key, help=help_of(sft.SFTRunConfig, "max_steps")
    )
    if show_advanced():
        c1.slider(
            "Samples", LIVE_SAMPLES.lo, LIVE_SAMPLES.hi, step=10, key=LIVE_SAMPLES.key,
            help=help_of(sft.SFTRunConfig, "samples"),
        )  # fmt: skip
        with c3:
            lr_slider(
                "Learning rate", LIVE_LR.key,
                help_of(sft.SFTRunConfig, "learning_rate") + " Above ~1 the loss becomes NaN.",
            )  # fmt: skip
        with st.expander("More settings"):
            st.toggle(
                "Loss on the response only", key=LIVE_COMPLETION_ONLY.key,
                help=help_of(sft.SFTRunConfig, "completion_only_loss"),
            )  # fmt: skip
            st.toggle(
                "Freeze the token embeddings", key=LIVE_FREEZE.key,
                help=help_of(sft.SFTRunConfig, "freeze_embeddings"),
            )  # fmt: skip
    cfg = sft.SFTRunConfig(
        samples=setting(LIVE_SAMPLES),
        max_steps=setting(LIVE_STEPS),
        learning_rate=setting(LIVE_LR),
        completion_only_loss=setting(LIVE_COMPLETION_ONLY),
        freeze_embeddings=setting(LIVE_FREEZE),
    )
    if loaded.n_params > 5e6:
        st.warning(
            f"{md_escape(loaded.name)} has {loaded.n_params / 1e6:.0f} M parameters: on a CPU each step takes "
            "seconds, not milliseconds. tiny-base runs the default in under 20 s.",
            icon="🐢",
        )
    countries = ", ".join(c.name for c in HELD_OUT_COUNTRIES)
    run_panel(
        "sft_live",
        lambda: Job("sft_live", sft.live_sft_work(loaded, cfg)),
        draw_live,
        start_label="Start SFT",
        idle_message=f"Press Start SFT to fine-tune a copy of {loaded.name} with trl's SFTTrainer. Held-out "
        f"questions ask about countries that are in no training pair: {countries}.",
    )
    show_code(sft.sft_config, sft.make_trainer)


def _scores(job: Job) -> dict:
    return {n["stage"]: n["score"] for n in list(job.notes) if "stage" in n}


def draw_live(job: Job) -> None:
    rows = [m for m in job.snapshot() if "loss" in m]
    if rows:
        st.plotly_chart(
            plots.loss_curve(
                [m["step"] for m in rows],
                [m["loss"] for m in rows],
                title="SFTTrainer's training loss (response tokens only unless switched off)",
            ),
            key="sft_live_loss",
        )
    scores = _scores(job)
    if "before" not in scores:
        st.caption("Asking the held-out questions before training…")
        return
    before, after = scores["before"], scores.get("after")
    m1, m2 = st.columns(2)
    m1.metric(
        "Held-out accuracy",
        f"{after.accuracy:.0%}" if after else f"{before.accuracy:.0%}",
        f"{after.accuracy - before.accuracy:+.0%} (was {before.accuracy:.0%})" if after else "before training",
        help="Answer names the right capital / language / continent of a country the SFT data never mentions.",
    )
    m2.metric(
        "Well-formatted answers",
        f"{after.format_rate:.0%}" if after else f"{before.format_rate:.0%}",
        f"{after.format_rate - before.format_rate:+.0%} (was {before.format_rate:.0%})" if after else "before training",
        help="One polished sentence, then the end-of-text token (the model learned to stop).",
    )
    questions = held_out_questions()
    table = {
        "held-out question": [q.prompt for q in questions],
        "before SFT": [_shown(a) for a in before.answers],
    }
    if after:
        table["after SFT"] = [_shown(a) for a in after.answers]
        table["right?"] = ["✅" if c else "❌" for c in after.correct]
    st.dataframe(pd.DataFrame(table), hide_index=True, key="sft_live_answers")


def _shown(answer: sft.ChatAnswer) -> str:
    return answer.text.strip() + ("" if answer.stopped else " …(no end token)")


# -- 3. quality vs quantity --------------------------------------------------------------------------------


def quality_demo(loaded: LoadedModel) -> None:
    Q = sft.QualityConfig
    c1, c2, c3 = st.columns(3)
    polished = c1.slider(
        "Polished samples", Q_POLISHED.lo, Q_POLISHED.hi, step=10, key=Q_POLISHED.key,
        help=help_of(Q, "polished_samples"),
    )  # fmt: skip
    mediocre = c2.slider(
        "Mediocre samples", Q_MEDIOCRE.lo, Q_MEDIOCRE.hi, step=100, key=Q_MEDIOCRE.key,
        help=help_of(Q, "mediocre_samples"),
    )  # fmt: skip
    steps = c3.slider(
        "Steps (each run)", Q_STEPS.lo, Q_STEPS.hi, step=10, key=Q_STEPS.key, help=help_of(Q, "max_steps")
    )
    cfg = Q(polished_samples=polished, mediocre_samples=mediocre, max_steps=steps)
    run_panel(
        "sft_quality",
        lambda: Job("sft_quality", sft.quality_work(loaded, cfg)),
        draw_comparison,
        start_label="Train both",
        idle_message="Two runs from the same model, the same steps: a few polished pairs vs many mediocre ones.",
    )
    with st.expander("See the mediocre data"):
        st.dataframe(
            pd.DataFrame([(p.prompt, p.response) for p in mediocre_pairs(12)], columns=["instruction", "response"]),
            hide_index=True,
            key="sft_q_mediocre_examples",
        )


def _rates(score: sft.HeldOutScore) -> list[float]:
    return [score.accuracy, score.format_rate, score.usable_rate]


def draw_comparison(job: Job) -> None:
    notes = [n for n in list(job.notes) if "result" in n]
    metrics = job.snapshot()
    labels = {n["run"]: n["label"] for n in notes}
    series = {}
    for run in sorted({int(m["run"]) for m in metrics if "loss" in m}):
        rows = [m for m in metrics if m.get("run") == run and "loss" in m]
        series[labels.get(run, f"run {run + 1} (training…)")] = ([m["step"] for m in rows], [m["loss"] for m in rows])
    if series:
        st.plotly_chart(plots.loss_curves(series, "Training loss of each run"), key=f"{job.name}_loss")
    if not notes:
        return
    results = [n["result"] for n in notes]
    names = [n["label"] for n in notes]
    st.plotly_chart(
        plots.grouped_bars(
            ["right fact", "house format", "both (usable)"],
            {
                "before (same start)": _rates(results[0].before),
                **{name: _rates(r.after) for name, r in zip(names, results, strict=True)},
            },
            title="After training: right facts and consistent format on held-out questions",
            x_title="measure (30 held-out questions)",
            y_title="share of answers (%)",
        ),
        key=f"{job.name}_bars",
    )
    questions = held_out_questions()
    table = {"held-out question": [q.prompt for q in questions]}
    for name, r in zip(names, results, strict=True):
        table[name] = [_shown(a) for a in r.after.answers]
    st.dataframe(pd.DataFrame(table), hide_index=True, key=f"{job.name}_answers")
    if job.name == "sft_quality":
        st.caption(
            "Right facts come from pre-training either way; what the data decides is the shape of the answer. "
            "Many mediocre pairs teach the *average* of their styles: answers that match none of them."
        )


# -- 4. LoRA vs full ----------------------------------------------------------------------------------------


def lora_demo(loaded: LoadedModel) -> None:
    L = sft.LoraComparisonConfig
    c1, c2, c3 = st.columns(3)
    rank = c1.slider("LoRA rank r", LORA_RANK.lo, LORA_RANK.hi, key=LORA_RANK.key, help=help_of(L, "lora_rank"))
    steps = c2.slider(
        "Steps (each run)", LORA_STEPS.lo, LORA_STEPS.hi, step=10, key=LORA_STEPS.key, help=help_of(L, "max_steps")
    )
    if show_advanced():
        with c3:
            lr_slider("LoRA learning rate", LORA_LR.key, help_of(L, "lora_learning_rate"))
    cfg = L(lora_rank=rank, max_steps=steps, lora_learning_rate=setting(LORA_LR))
    run_panel(
        "sft_lora",
        lambda: Job("sft_lora", sft.lora_work(loaded, cfg)),
        draw_lora,
        start_label="Train both",
        idle_message="Full fine-tuning, then peft LoRA adapters, on the same pairs for the same steps.",
    )
    show_code(sft.lora_config, sft.base_weight_change)


def draw_lora(job: Job) -> None:
    draw_comparison(job)
    notes = [n for n in list(job.notes) if "result" in n]
    if not notes:
        return
    rows = []
    for n in notes:
        r: sft.SFTRun = n["result"]
        rows.append(
            {
                "method": n["label"],
                "trainable parameters": f"{r.trainable_params:,}",
                "% of all": f"{r.trainable_params / r.total_params:.2%}",
                "train time (s)": f"{r.wall_s:.1f}",
                "final loss (nats/token)": f"{r.losses[-1]:.3f}" if r.losses else "",
                "held-out accuracy": f"{r.after.accuracy:.0%}",
                "largest change of an original weight": f"{n['base_change']:.2e}",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="sft_lora_table")
    st.caption(
        "LoRA freezes every original weight (its largest change is exactly 0) and trains B·A beside each "
        "linear layer. On a 1M-parameter model the saving is small and the extra matmuls can even cost time; "
        "on a 7B model the same idea trains ~0.1–1% of the weights and fits on one GPU."
    )


# -- 5. style, not knowledge --------------------------------------------------------------------------------


def wrong_facts_demo(loaded: LoadedModel) -> None:
    W = sft.WrongFactsConfig
    steps = st.slider(
        "Steps", WRONG_STEPS.lo, WRONG_STEPS.hi, step=10, key=WRONG_STEPS.key, help=help_of(W, "max_steps")
    )
    cfg = W(max_steps=steps)
    run_panel(
        "sft_wrong",
        lambda: Job("sft_wrong_facts", sft.wrong_facts_work(loaded, cfg)),
        draw_wrong_facts,
        start_label="Train on wrong facts",
        idle_message=f"The polished pairs, except that {', '.join(WRONG_FACT_COUNTRIES)} each get another "
        "country's capital, stated just as confidently as the true ones.",
    )
    show_code(sft.continuation_probability)


def draw_wrong_facts(job: Job) -> None:
    rows = [m for m in job.snapshot() if "loss" in m]
    if rows:
        st.plotly_chart(
            plots.loss_curve([m["step"] for m in rows], [m["loss"] for m in rows], title="Training loss"),
            key="sft_wrong_loss",
        )
    result: sft.WrongFactsResult | None = job.result
    if result is None:
        return
    names = [p.country for p in result.after]
    st.plotly_chart(
        plots.grouped_bars(
            names,
            {
                "wrong capital, before SFT": [p.p_wrong for p in result.before],
                "wrong capital, after SFT": [p.p_wrong for p in result.after],
                "true capital, after SFT": [p.p_right for p in result.after],
            },
            title="P(answer | 'The capital of X is'): SFT made the wrong fact the likely one",
            x_title="country taught a wrong capital",
            y_title="probability of the answer (%)",
        ),
        key="sft_wrong_bars",
    )
    table = pd.DataFrame(
        {
            "country": names,
            "true / taught": [f"{p.right} / {p.wrong}" for p in result.after],
            "P(wrong) before": [f"{p.p_wrong:.2%}" for p in result.before],
            "P(wrong) after": [f"{p.p_wrong:.2%}" for p in result.after],
            "P(true) before": [f"{p.p_right:.2%}" for p in result.before],
            "P(true) after": [f"{p.p_right:.2%}" for p in result.after],
            "answer after SFT": [p.answer for p in result.after],
        }
    )
    st.dataframe(table, hide_index=True, key="sft_wrong_table")
    st.markdown(
        f"Held-out countries (no wrong facts, not in the data) are still answered from pre-training: "
        f"**{result.run.after.accuracy:.0%}** right. SFT copied the *format* everywhere and the wrong *facts* "
        "only where it saw them — and states them just as fluently."
    )


def demo() -> None:
    demo_tabs(
        "sft",
        [
            ("Loss mask", lambda: loss_mask_demo(loaded)),
            ("Live SFT", lambda: live_demo(loaded)),
            ("Quality vs quantity", lambda: quality_demo(loaded)),
            ("LoRA vs full", lambda: lora_demo(loaded)),
            ("Style, not knowledge", lambda: wrong_facts_demo(loaded)),
        ],
    )
    urlstate.publish(SETTINGS)  # after every widget: the address bar now shares this exact view


with demo_area:
    demo()
