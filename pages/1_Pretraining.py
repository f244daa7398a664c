"""Pre-training: the card beside five demos, one tab each.

1. Next-token explorer: the card's code example, live (one forward per prompt; sliders re-use the logits).
2. Watch it learn: a fresh tiny GPT-2 pre-trains in a background job; loss, probe distribution, samples.
3. Training timeline: the bundled tiny-base's saved history, instant.
4. Data quality: corrupt part of the corpus, compare short runs (precomputed view, live re-run).
5. Chinchilla calculator: L(N, D) = E + A/N^alpha + B/D^beta and the compute-optimal split.

    streamlit run app.py   # then "1 · Pre-training" in the sidebar
"""

import streamlit as st

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.shell import begin_page, show_advanced

TRY_IT = {
    "pretraining-q1": "Watch it learn: press Start and see one objective, next-token loss, teach a random "
    "model ' the', then *a* capital, then ' Paris'. The Training timeline tab shows the same without waiting.",
    "pretraining-q2": "Watch it learn: the greedy samples read like the corpus long before the probe names "
    "the right capital: having read is not knowing.",
    "pretraining-q3": "Chinchilla tab: both options sit on the same iso-compute curve; compare their "
    "predicted losses with the optimum and the overtrained 8B × 15T point.",
    "pretraining-q4": "Data quality tab: set the noise slider to 5% and 30% and compare the loss and the "
    "probability of the right capital; switch to 'the same wrong one every time' to see frequency win.",
    "pretraining-q5": "Next-token explorer: type 'Hello, I am' or a question; a base model does not answer, "
    "it continues the text.",
}
model_slot = begin_page("Pre-training", "📚")
demo_area = lesson_layout("pretraining", TRY_IT)

# The card is on screen now. The demo's imports (torch, transformers, trl: seconds on a fresh server) follow.
import json
import math
import threading
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch

from llmlab import dataquality, nexttoken, plots, pretrain, scaling
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from llmlab.pretrain import PretrainConfig, ProbeConfig, corpus_ids, live_pretraining
from ui import urlstate
from ui.frame import demo_tabs, page_frame, shared_model, show_code
from ui.runs import fragment_unless_running, run_panel
from ui.text import md_escape
from ui.tokens import token_chips

DEFAULT_PROMPT = "The capital of France is"
MAX_PROMPT_CHARS = 2_000
PROMPT_KEY = "pt_prompt"
LAST_STEP_KEY = "pt_last_step"  # how the last appended token was chosen (for the "step just taken" chart)
LAST_FIGURE_KEY = "pt_last_step_figure"  # (version, figure) of the step just taken: sliders do not change it
LIVE_FIGURES_KEY = "pt_live_figures"  # the live run's charts, kept between redraws (see _live_figures)
GROWN_KEY = "pt_grown"  # (prompt text, how many tokens the buttons appended at its end)
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 4e-3, 6e-3, 1e-2, 3e-2, 1e-1, 1.0)
BATCH_SIZES = (4, 8, 16, 32, 64)
CHINCHILLA_MODES = ("parameters and tokens", "a compute budget and parameters")

loaded = page_frame(model_slot)
LIVE = PretrainConfig()
NOISE = dataquality.NoiseConfig()
# Settings that round-trip through the URL (?pt_temperature=0.7&pt_ch_n=70 ...): a link reproduces a view.
EXPLORER_SETTINGS = (
    urlstate.Param("pt_temperature", 1.0, lo=0.05, hi=5.0),
    urlstate.Param("pt_top_k", 0, lo=0, hi=10_000_000),
    urlstate.Param("pt_top_p", 1.0, lo=0.0, hi=1.0),
    urlstate.Param("pt_shown", 10, lo=5, hi=30),
)
LIVE_SETTINGS = (
    urlstate.Param("pt_live_steps", LIVE.steps, lo=10, hi=20_000),
    urlstate.Param("pt_live_lr", LIVE.learning_rate, choices=LEARNING_RATES),
    urlstate.Param("pt_live_batch", LIVE.batch_size, choices=BATCH_SIZES),
)
NOISE_SETTINGS = (
    urlstate.Param("pt_dq_kind", NOISE.kind, choices=tuple(dataquality.KINDS)),
    urlstate.Param("pt_dq_noise", 0.3, lo=0.0, hi=0.9),
    urlstate.Param("pt_dq_steps", NOISE.steps, lo=20, hi=2_000),
)
CHINCHILLA_SETTINGS = (
    urlstate.Param("pt_ch_n", 7.0, lo=0.001, hi=1e5),
    urlstate.Param("pt_ch_d", 100.0, lo=0.001, hi=1e7),
    urlstate.Param("pt_ch_mode", CHINCHILLA_MODES[0], choices=CHINCHILLA_MODES),
    urlstate.Param("pt_ch_c", 21.6, lo=15.0, hi=28.0),
)
for _notice in urlstate.restore(EXPLORER_SETTINGS + LIVE_SETTINGS + NOISE_SETTINGS + CHINCHILLA_SETTINGS, "pt_"):
    st.warning(_notice, icon="🔗")


def keep_defaults(params: tuple[urlstate.Param, ...]) -> None:
    """A widget its tab did not draw (e.g. tokens D in budget mode) loses its state; give it back its default."""
    for param in params:
        st.session_state.setdefault(param.key, param.default)


def help_of(config_class, name: str) -> str:
    """A config field's help text: the slider says what the code says."""
    return next(f.metadata.get("help", "") for f in fields(config_class) if f.name == name)


# -- 1. next-token explorer ----------------------------------------------------------------------------


@st.cache_data(max_entries=512, show_spinner=False)
def cached_logits(model_name: str, device: str, token_ids: tuple[int, ...]) -> np.ndarray:
    """One forward pass per (model, prompt); sliders re-use these logits. Shared by sessions (pure data)."""
    model = shared_model(model_name, device).model
    return nexttoken.next_token_logits(model, token_ids).numpy()


@st.fragment
def explorer(loaded: LoadedModel) -> None:
    """A fragment, like every tab: moving a slider reruns only this tab, and never the model (cached logits)."""
    st.session_state.setdefault(PROMPT_KEY, DEFAULT_PROMPT)
    keep_defaults(EXPLORER_SETTINGS)
    prompt = st.text_area(
        "Prompt",
        key=PROMPT_KEY,
        height=80,
        max_chars=MAX_PROMPT_CHARS,
        help="The model sees these tokens and predicts the next one.",
    )
    try:
        tokens = nexttoken.encode_prompt(loaded.tokenizer, prompt, nexttoken.context_limit(loaded.model))
    except nexttoken.PromptError as err:
        st.info(str(err), icon="✍️")
        return
    grown_text, grown = st.session_state.get(GROWN_KEY, ("", 0))
    grown = min(grown, len(tokens.ids)) if grown_text == prompt else 0
    st.caption(
        f"{len(tokens.ids)} tokens; the small number on each is its id in the vocabulary"
        + (f"; the last {grown} (orange) were appended by the buttons" if grown else "")
    )
    backgrounds = ["rgba(76,120,168,.15)"] * (len(tokens.ids) - grown) + ["rgba(245,133,24,.35)"] * grown
    token_chips(tokens.pieces, tokens.ids, backgrounds=backgrounds)
    if tokens.truncated:
        st.warning(
            f"The prompt is longer than the model's context: only its last {len(tokens.ids)} tokens are used "
            f"({tokens.truncated} dropped from the front).",
            icon="✂️",
        )

    logits = torch.from_numpy(cached_logits(loaded.name, loaded.device, tokens.ids))
    vocab = logits.shape[-1]
    c1, c2, c3 = st.columns(3)
    temperature = c1.slider(
        "Temperature",
        min_value=0.05,
        max_value=5.0,
        step=0.05,
        key="pt_temperature",
        help="Divides the logits: < 1 sharpens the distribution, > 1 flattens it.",
    )
    top_k = c2.number_input(
        "Top-k (0 = all)",
        min_value=0,
        max_value=10_000_000,
        step=1,
        key="pt_top_k",
        help="Keep only the k most likely tokens; k of the vocabulary size or more keeps them all.",
    )
    top_p = c3.slider(
        "Top-p",
        min_value=0.0,
        max_value=1.0,
        step=0.01,
        key="pt_top_p",
        help="Keep the smallest set of top tokens whose probability adds up to p (0 keeps only the top one).",
    )
    shown = st.slider("Tokens shown", 5, 30, key="pt_shown")
    urlstate.publish(EXPLORER_SETTINGS)

    raw = torch.softmax(logits, dim=-1)
    sampling = nexttoken.sampling_distribution(logits, temperature, int(top_k), top_p)
    kept = int((sampling > 0).sum())
    notes = [f"{kept:,} of {vocab:,} tokens can be sampled"]
    if top_k >= vocab:
        notes.append(f"top-k {int(top_k):,} ≥ the vocabulary ({vocab:,}), so top-k removes nothing")
    if top_p == 0:
        notes.append("top-p 0 keeps only the most likely token: sampling becomes greedy")
    st.caption("; ".join(notes) + ".")
    raw_top = nexttoken.top_tokens(raw, loaded.tokenizer, shown)
    sampling_top = nexttoken.top_tokens(sampling, loaded.tokenizer, shown)
    best = raw_top[0]
    settings = f"T = {temperature:g}, top-k = {int(top_k) or 'all'}, top-p = {top_p:g}"
    st.markdown(f"Most likely next token: **{md_escape(repr(best.text))}** (p = {best.prob:.3f}, id {best.token_id})")
    st.plotly_chart(
        plots.next_token_bars(
            sampling_top,
            title=f"Next-token distribution after the prompt ({loaded.name})",
            compare=raw_top,
            compare_name="raw model (T = 1)",
            name=f"sampling ({settings})",
        ),
        key="pt_next_token_chart",
    )

    b1, b2 = st.columns(2)
    step = {"model": loaded.name, "prompt": prompt, "settings": settings, "raw": raw, "sampling": sampling}
    b1.button("Append most likely", key="pt_append", on_click=_grow, args=(loaded.tokenizer, step, "greedy"))
    b2.button("Sample next", key="pt_sample", on_click=_grow, args=(loaded.tokenizer, step, "sampled"))
    _last_step_chart(loaded, shown)
    show_code(nexttoken.next_token_logits, nexttoken.sampling_distribution)


def _grow(tokenizer, step: dict, mode: str) -> None:
    """Button callback: choose the next token (argmax, or a draw from the sampling distribution), append it."""
    if mode == "greedy":
        token_id = int(step["raw"].argmax())
    else:
        generator = st.session_state.setdefault("pt_rng", torch.Generator().manual_seed(0))
        token_id = int(torch.multinomial(step["sampling"], 1, generator=generator))
    ids = tokenizer(step["prompt"], add_special_tokens=False)["input_ids"] + [token_id]
    text = tokenizer.decode(ids)[:MAX_PROMPT_CHARS]
    _, grown = st.session_state.get(GROWN_KEY, ("", 0))
    was_grown = st.session_state.get(GROWN_KEY, ("", 0))[0] == step["prompt"]
    st.session_state[PROMPT_KEY] = text
    st.session_state[GROWN_KEY] = (text, grown + 1 if was_grown else 1)
    st.session_state[LAST_STEP_KEY] = {**step, "token_id": token_id, "mode": mode}


def _last_step_chart(loaded: LoadedModel, shown: int) -> None:
    last = st.session_state.get(LAST_STEP_KEY)
    if not last or last["model"] != loaded.name:
        st.caption("Press a button to grow the text one token at a time; the chart of that step appears here.")
        return
    version = (last["model"], last["prompt"], last["token_id"], last["mode"], last["settings"], shown)
    cached = st.session_state.get(LAST_FIGURE_KEY)
    if cached is None or cached[0] != version:  # slider moves leave the step just taken as it was
        cached = st.session_state[LAST_FIGURE_KEY] = (version, _last_step_figure(loaded, last, shown))
    st.plotly_chart(cached[1], key="pt_last_step_chart")


def _last_step_figure(loaded: LoadedModel, last: dict, shown: int):
    chosen = last["token_id"]
    raw_top = nexttoken.top_tokens(last["raw"], loaded.tokenizer, shown)
    sampling_top = nexttoken.top_tokens(last["sampling"], loaded.tokenizer, shown)
    if all(t.token_id != chosen for t in sampling_top):  # a rare draw: add its bar so it can be seen
        text = nexttoken.readable_piece(loaded.tokenizer, chosen)
        sampling_top.append(nexttoken.TokenProb(chosen, text, float(last["sampling"][chosen])))
        raw_top.append(nexttoken.TokenProb(chosen, text, float(last["raw"][chosen])))
    piece = nexttoken.readable_piece(loaded.tokenizer, chosen)
    how = "the most likely token" if last["mode"] == "greedy" else f"sampled with {last['settings']}"
    return plots.next_token_bars(
        sampling_top,
        title=f"Step just taken: {piece!r} was appended ({how}; orange bar)",
        compare=raw_top,
        compare_name="raw model (T = 1)",
        name=f"sampling ({last['settings']})",
        highlight_id=chosen,
    )


# -- 2. watch it learn ---------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _warm_corpus(model_name: str, device: str) -> threading.Thread:
    """Encode the training corpus in the background once per server, so Start does not wait for it."""
    thread = threading.Thread(target=corpus_ids, args=(shared_model(model_name, device).tokenizer,), daemon=True)
    thread.start()
    return thread


@fragment_unless_running
def watch_it_learn(device: str) -> None:
    # Always tiny-base's tokenizer: the fresh model has tiny-base's shape, whatever model the sidebar picks.
    tokenizer = shared_model(DEFAULT_MODEL, device).tokenizer
    _warm_corpus(DEFAULT_MODEL, device)
    keep_defaults(LIVE_SETTINGS)
    c1, c2, c3 = st.columns(3)
    steps = c1.number_input(
        "Steps", min_value=10, max_value=20_000, step=10, key="pt_live_steps", help=help_of(PretrainConfig, "steps")
    )
    if show_advanced():  # presenter mode hides them; their values (URL or default) still apply
        c2.select_slider(
            "Learning rate",
            LEARNING_RATES,
            format_func=lambda x: f"{x:g}",
            key="pt_live_lr",
            help=help_of(PretrainConfig, "learning_rate"),
        )
        c3.select_slider("Batch size", BATCH_SIZES, key="pt_live_batch", help=help_of(PretrainConfig, "batch_size"))
    lr, batch = st.session_state["pt_live_lr"], st.session_state["pt_live_batch"]
    probe_prompt = st.text_input(
        "Probe prompt", ProbeConfig.prompt, max_chars=300, key="pt_live_probe", help=help_of(ProbeConfig, "prompt")
    )
    try:
        nexttoken.encode_prompt(tokenizer, probe_prompt, LIVE.block_size)
    except nexttoken.PromptError as err:
        st.warning(f"{err} The run will probe {ProbeConfig.prompt!r} instead.", icon="✍️")
        probe_prompt = ProbeConfig.prompt
    urlstate.publish(LIVE_SETTINGS)
    config = PretrainConfig(steps=int(steps), batch_size=int(batch), learning_rate=float(lr))
    probe = ProbeConfig(prompt=probe_prompt)
    show_code(pretrain.sample_batch, pretrain.pretrain)

    def make_job() -> Job:
        return Job("pretrain-live", lambda job: live_pretraining(job, tokenizer, config, probe))

    job = run_panel(
        "pt_live",
        make_job,
        lambda job: draw_live_run(job, tokenizer),
        start_label="Start training",
        idle_message=(
            f"Start pre-trains a fresh {_n_params_label(device)} GPT-2 (random weights, seed {config.seed}) on the "
            f"generated corpus: {config.batch_size} sequences × {config.block_size} tokens per step."
        ),
    )
    if job is None:
        st.caption("Before training, every token is about equally likely: the loss starts near ln V.")


def _n_params_label(device: str) -> str:
    tiny = shared_model(DEFAULT_MODEL, device)
    return f"{tiny.n_params / 1e6:.2f}M-parameter"


def _live_figures(job: Job) -> dict:
    """This session's figures of `job`, kept between the 0.5 s redraws. Building plotly figures is the costly
    part of a redraw, and it holds the GIL that the training thread needs: a redraw that brings only new loss
    points updates the loss curve's data, and the probe charts are rebuilt only when a new probe arrived."""
    token = (id(job), job.started_at)
    cache = st.session_state.get(LIVE_FIGURES_KEY)
    if cache is None or cache["job"] != token:
        cache = st.session_state[LIVE_FIGURES_KEY] = {"job": token}
    return cache


DIVERGED_FACTOR = 1.5  # a live loss this many times ln V: worse than guessing, the step size is too big


def draw_live_run(job: Job, tokenizer) -> None:
    figures = _live_figures(job)
    metrics = job.snapshot()
    notes = list(job.notes)
    probes = [n for n in notes if n["kind"] == "probe"]
    samples = [n for n in notes if n["kind"] == "sample"]
    vocab = len(tokenizer)
    prompt, answer = _probe_of(notes)
    if not metrics:
        st.caption("Preparing the corpus and a fresh model…")
    else:
        last = metrics[-1]
        rate = last["tokens"] / max(last["elapsed_s"], 1e-9)
        st.caption(
            f"Step {int(last['step']):,}: loss {last['loss']:.3f} nats/token, {int(last['tokens']):,} tokens seen, "
            f"{rate:,.0f} tokens/s"
        )
        steps, losses = [m["step"] for m in metrics], [m["loss"] for m in metrics]
        recent = losses[-5:]
        if len(losses) >= 5 and sum(recent) / len(recent) > DIVERGED_FACTOR * math.log(vocab):
            st.warning(
                f"The loss is {recent[-1]:.1f} nats/token, far above ln V = {math.log(vocab):.2f}, the loss of a "
                "uniform guess: the learning rate is too high, each update overshoots and the model got worse "
                f"than guessing. Stop and try a smaller one (the default is {LIVE.learning_rate:g}).",
                icon="📈",
            )
        if "loss" in figures:
            figures["loss"].data[0].x, figures["loss"].data[0].y = steps, losses  # new data, same figure
        else:
            figures["loss"] = plots.loss_curve(
                steps,
                losses,
                title="Training loss of the fresh model",
                start_line=math.log(vocab),
                start_label=f"ln V = ln {vocab} = {math.log(vocab):.2f}: a uniform guess",
            )
        st.plotly_chart(figures["loss"], key="pt_live_loss")
    if probes:
        _draw_probes(probes, metrics, tokenizer, prompt, answer, figures)
    if samples:
        st.markdown(f"**Greedy samples at step {samples[-1]['step']}**")
        st.text("\n".join(samples[-1]["texts"]))
        if len(samples) > 1:
            with st.expander("Samples at every checkpoint"):
                st.text("\n\n".join(f"step {s['step']}:\n" + "\n".join(s["texts"]) for s in samples))


def _probe_of(notes: list[dict]) -> tuple[str, str | None]:
    """The probe prompt the run was started with, and the corpus's answer to it (if it is a capital probe)."""
    start = next((n for n in notes if n["kind"] == "start"), None)
    return (start["prompt"], start["answer"]) if start else (ProbeConfig.prompt, None)


def _draw_probes(
    probes: list[dict], metrics: list[dict], tokenizer, prompt: str, answer: str | None, figures: dict
) -> None:
    answer_id = tokenizer(answer, add_special_tokens=False)["input_ids"][0] if answer else None
    latest = probes[-1]
    probs = torch.from_numpy(latest["probs"])
    top1 = [int(np.argmax(p["probs"])) for p in probes]
    if figures.get("probes") != len(probes):  # a new probe arrived: rebuild the two probe charts
        figures["probes"] = len(probes)
        tops = nexttoken.top_tokens(probs, tokenizer, 10)
        figures["bars"] = plots.next_token_bars(
            tops,
            title=f"{prompt!r} → next token at step {latest['step']}",
            highlight_id=answer_id if answer_id is not None else tops[0].token_id,
        )
        tracked = list(dict.fromkeys(top1))[-6:]  # every token that was ever the top-1 (latest six)
        if answer_id is not None and answer_id not in tracked:
            tracked.append(answer_id)
        lines = {nexttoken.readable_piece(tokenizer, t): [float(p["probs"][t]) for p in probes] for t in tracked}
        figures["lines"] = plots.token_probability_lines(
            [p["step"] for p in probes],
            lines,
            title="The probe's top-1 tokens so far: probability as training goes on",
            highlight=answer,
        )
    st.plotly_chart(figures["bars"], key="pt_live_probe_chart")
    if answer_id is not None:
        since = len(top1)  # index of the first probe from which the answer stays the top-1
        while since and top1[since - 1] == answer_id:
            since -= 1
        if since == len(top1):
            st.caption(f"{answer!r} is not the top-1 yet (p = {float(probs[answer_id]):.3f} now).")
        else:
            step = probes[since]["step"]
            seconds = next((m["elapsed_s"] for m in metrics if m["step"] == step), 0.0)
            st.success(
                f"{answer!r} has been the top-1 since step {step} ({seconds:.1f} s of training), "
                f"now at p = {float(probs[answer_id]):.2f}.",
                icon="🎯",
            )
    st.plotly_chart(figures["lines"], key="pt_live_lines")


# -- 3. training timeline ------------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def load_history(path: str) -> dict | None:
    file = Path(path) / "training_history.json"
    return json.loads(file.read_text()) if file.is_file() else None


@st.fragment
def timeline(loaded: LoadedModel) -> None:
    history = load_history(loaded.source)
    if history is None:
        history = load_history(shared_model(DEFAULT_MODEL, loaded.device).source)
        st.caption(f"{md_escape(loaded.name)} has no saved training history; showing tiny-base's.")
    checkpoints = history["checkpoints"]
    steps = [c["step"] for c in checkpoints]
    step = st.select_slider("Training step", options=steps, value=steps[-1], key="pt_timeline_step")
    point = checkpoints[steps.index(step)]
    tokens_per_step = history["tokens_per_step"]
    vocab = history["vocab_size"]
    loss_here = history["loss"][step - 1] if step else math.log(vocab)
    st.caption(
        f"Step {step} of {len(history['loss'])}: {step * tokens_per_step:,} tokens read, "
        f"loss {loss_here:.3f} nats/token ({'ln V before any step' if not step else 'this step'})."
    )
    st.plotly_chart(
        plots.loss_curve(
            range(1, len(history["loss"]) + 1),
            history["loss"],
            title="How tiny-base learned: loss per step (orange line = chosen step)",
            start_line=float(np.log(vocab)),
            start_label="ln V: a uniform guess",
        ).add_vline(x=max(step, 1), line_color=plots.HIGHLIGHT),
        key="pt_timeline_loss",
    )
    tops = [nexttoken.TokenProb(i, t["text"], t["prob"]) for i, t in enumerate(point["top"])]
    st.plotly_chart(
        plots.next_token_bars(
            tops, title=f"'{history['probe_prompt']}' → next token at step {step} ({step * tokens_per_step:,} tokens)"
        ),
        key="pt_timeline_dist",
    )
    # Every token that was the top-1 at some checkpoint, with its probability at each (0 when out of the top 10).
    leaders = list(dict.fromkeys(c["top"][0]["text"] for c in checkpoints))
    lines = {
        text: [next((t["prob"] for t in c["top"] if t["text"] == text), 0.0) for c in checkpoints] for text in leaders
    }
    st.plotly_chart(
        plots.token_probability_lines(
            steps, lines, title="Who was the top-1 when: probability at each saved checkpoint", highlight=" Paris"
        ),
        key="pt_timeline_lines",
    )
    st.caption("Greedy sample at this step:")
    st.text(point["sample"])


# -- 4. data quality -----------------------------------------------------------------------------------


@st.cache_data(show_spinner=False)
def precomputed_noise() -> dict | None:
    return dataquality.load_precomputed()


@fragment_unless_running
def data_quality(device: str) -> None:
    keep_defaults(NOISE_SETTINGS)
    kind = st.selectbox(
        "Corruption",
        list(dataquality.KINDS),
        format_func=lambda k: dataquality.KINDS[k],
        key="pt_dq_kind",
        help=help_of(dataquality.NoiseConfig, "kind"),
    )
    noise = st.slider(
        "Your noise level: fraction of documents corrupted",
        min_value=0.0,
        max_value=0.9,
        step=0.05,
        key="pt_dq_noise",
        help="The live run compares clean data, 5% noise (the question's) and this level.",
    )
    saved = precomputed_noise()
    live_results = _live_noise_results()
    if saved is None and not live_results:
        st.info("No precomputed results found: run `python -m llmlab.dataquality`, or press Start below.", icon="ℹ️")
    series_loss, series_p = {}, {}
    if saved is not None:
        rows = saved["results"][kind]
        label = f"precomputed ({saved['config']['steps']} steps each)"
        series_loss[label] = ([r["noise"] for r in rows], [r["clean_loss"] for r in rows])
        series_p[label] = ([r["noise"] for r in rows], [r["p_correct"] for r in rows])
        nearest = min(rows, key=lambda r: abs(r["noise"] - noise))
        clean = next(r for r in rows if r["noise"] == 0)
        st.caption(
            f"Precomputed at {nearest['noise']:.0%} noise (the nearest saved level): loss on clean text "
            f"{nearest['clean_loss']:.3f} nats/token ({nearest['clean_loss'] - clean['clean_loss']:+.3f} vs clean "
            f"data), mean p(right capital) {nearest['p_correct']:.2f} ({nearest['p_correct'] - clean['p_correct']:+.2f}),"
            f" {nearest['capitals_right']}/40 capitals still the top-1 (clean data: {clean['capitals_right']}/40)."
        )
    mine = [r for r in live_results if r["kind"] == kind]
    if mine:
        label = f"your live run ({mine[0]['steps']} steps each)"
        series_loss[label] = ([r["noise"] for r in mine], [r["clean_loss"] for r in mine])
        series_p[label] = ([r["noise"] for r in mine], [r["p_correct"] for r in mine])
    if series_loss:
        st.plotly_chart(
            plots.metric_vs_noise(
                series_loss, "Loss on clean held-out text after training", "loss (nats per token)", noise
            ),
            key="pt_dq_loss",
        )
        st.plotly_chart(
            plots.metric_vs_noise(
                series_p,
                "Probability of the right capital, mean over 40 countries",
                "mean p(right capital)",
                noise,
                percent_y=True,
            ),
            key="pt_dq_p",
        )

    tokenizer = shared_model(DEFAULT_MODEL, device).tokenizer
    steps = st.number_input(
        "Steps per run",
        min_value=20,
        max_value=2_000,
        step=10,
        key="pt_dq_steps",
        help=help_of(dataquality.NoiseConfig, "steps"),
    )
    urlstate.publish(NOISE_SETTINGS)
    show_code(dataquality.corrupt_document, dataquality.capital_knowledge)
    levels = sorted({0.0, 0.05, round(noise, 2)})
    config = dataquality.NoiseConfig(kind=kind, steps=int(steps))

    def make_job() -> Job:
        def work(job: Job):
            return dataquality.noise_experiment(
                tokenizer,
                levels,
                config,
                on_result=lambda r: job.note(kind="result", result={**asdict(r), "losses": None}),
                on_step=lambda level, m: job.log(noise=level, step=m.step, loss=m.loss),
                stop=job.stop_event,
            )

        return Job("data-quality", work)

    run_panel(
        "pt_dq",
        make_job,
        draw_noise_runs,
        start_label=f"Re-run live: {', '.join(f'{x:.0%}' for x in levels)} noise",
        idle_message=f"Start trains {len(levels)} fresh models of {int(steps)} steps each, one per noise level.",
    )


def _live_noise_results() -> list[dict]:
    from ui.runs import current_job

    job = current_job("pt_dq")
    return [n["result"] for n in job.notes if n["kind"] == "result"] if job is not None else []


def draw_noise_runs(job: Job) -> None:
    metrics = job.snapshot()
    runs: dict[str, tuple[list[int], list[float]]] = {}
    for m in metrics:
        steps, losses = runs.setdefault(f"{m['noise']:.0%} noise", ([], []))
        steps.append(int(m["step"]))
        losses.append(m["loss"])
    if not runs:
        st.caption("Corrupting the corpus and building a fresh model…")
        return
    st.plotly_chart(plots.loss_curves(runs, "Training loss of each run (on its own noisy text)"), key="pt_dq_live_loss")
    results = [n["result"] for n in job.notes if n["kind"] == "result"]
    if results:
        st.dataframe(
            [
                {
                    "noise": f"{r['noise']:.0%}",
                    "clean-text loss (nats/token)": round(r["clean_loss"], 3),
                    "training loss (nats/token)": round(r["train_loss"], 3),
                    "mean p(right capital)": round(r["p_correct"], 3),
                    "capitals top-1 (of 40)": r["capitals_right"],
                    "seconds": round(r["seconds"], 1),
                }
                for r in results
            ],
            hide_index=True,
            key="pt_dq_table",
        )


# -- 5. Chinchilla calculator --------------------------------------------------------------------------


@st.fragment
def chinchilla() -> None:
    law = scaling.CHINCHILLA
    keep_defaults(CHINCHILLA_SETTINGS)
    st.latex(
        rf"L(N, D) = {law.E} + \frac{{{law.A}}}{{N^{{{law.alpha}}}}} + \frac{{{law.B}}}{{D^{{{law.beta}}}}},"
        r"\qquad C \approx 6ND"
    )
    mode = st.radio("Choose", CHINCHILLA_MODES, horizontal=True, key="pt_ch_mode")
    c1, c2 = st.columns(2)
    n_billion = c1.number_input(
        "Parameters N (billions)", min_value=0.001, max_value=1e5, key="pt_ch_n", format="%.3f", help="Model size."
    )
    if mode == "parameters and tokens":
        d_billion = c2.number_input(
            "Training tokens D (billions)",
            min_value=0.001,
            max_value=1e7,
            key="pt_ch_d",
            format="%.3f",
            help="Data seen in training.",
        )
        run = scaling.TrainingRun("your run", n_billion * 1e9, d_billion * 1e9)
    else:
        exponent = c2.slider("Compute budget C (log10 FLOPs)", 15.0, 28.0, step=0.1, key="pt_ch_c")
        run = scaling.TrainingRun(
            "your run", n_billion * 1e9, float(scaling.tokens_for_budget(10**exponent, n_billion * 1e9))
        )
    urlstate.publish(CHINCHILLA_SETTINGS)
    best = scaling.compute_optimal(run.compute)
    rule = scaling.rule_of_thumb(run.compute)
    m1, m2 = st.columns(2)
    m1.metric("Predicted loss", f"{run.loss():.3f}", help="Nats per token, from the formula above.")
    m2.metric("Compute C = 6ND (FLOPs)", f"{run.compute:.2e}")
    m3, m4 = st.columns(2)
    m3.metric("Tokens per parameter", f"{run.tokens_per_param:,.1f}")
    m4.metric(
        "Best loss for this C",
        f"{best.loss():.3f}",
        delta=f"{best.loss() - run.loss():+.3f} vs yours",
        delta_color="off",
        help="The compute-optimal run of this fit for the same budget.",
    )
    st.caption(
        f"For C = {run.compute:.2e} FLOPs this fit's optimum is N = {scaling.format_count(best.n_params)} parameters "
        f"× D = {scaling.format_count(best.n_tokens)} tokens ({best.tokens_per_param:.0f} tokens per parameter); "
        f"the paper's 20-tokens-per-parameter rule says N = {scaling.format_count(rule.n_params)} × "
        f"D = {scaling.format_count(rule.n_tokens)} (loss {rule.loss():.3f})."
    )

    q3 = (scaling.Q3_SMALL, scaling.Q3_LARGE)
    over = scaling.OVERTRAINED
    budgets = {"your budget": run.compute, "Q3's budget": scaling.Q3_SMALL.compute, "8B × 15T's budget": over.compute}
    curves, frontier_lines = [], []
    for name, compute in budgets.items():
        if name != "your budget" and math.isclose(compute, run.compute, rel_tol=1e-3):
            continue
        n, d, loss = scaling.iso_compute_curve(compute, scaling.param_grid(compute))
        curves.append((f"{name}: C = {compute:.1e}", n, loss))
        frontier_lines.append((f"C = {compute:.1e} FLOPs", n, d, "dot"))
    named = (*q3, over)
    mine = [] if any(_same_run(run, r) for r in named) else [run]  # the default is Q3's first option
    points = [(r.label, r.n_params, r.loss()) for r in (*named, *mine)]
    optima = [scaling.compute_optimal(c) for c in dict.fromkeys(budgets.values())]
    st.plotly_chart(
        plots.iso_compute_losses(
            curves,
            points,
            "Same compute, different splits: predicted loss along C = 6ND",
            optima=[(o.n_params, o.loss()) for o in optima],
        ),
        key="pt_ch_iso",
    )
    budgets_grid = np.logspace(17, 27, 41)
    optimal = [scaling.compute_optimal(c) for c in budgets_grid]
    rules = [scaling.rule_of_thumb(c) for c in budgets_grid]
    frontier_lines = [
        ("compute-optimal frontier (this fit)", [r.n_params for r in optimal], [r.n_tokens for r in optimal], "solid"),
        ("D = 20 N (Chinchilla's rule)", [r.n_params for r in rules], [r.n_tokens for r in rules], "solid"),
        *frontier_lines,
    ]
    st.plotly_chart(
        plots.compute_frontier(
            frontier_lines,
            [(r.label, r.n_params, r.n_tokens) for r in (*named, *mine)],
            "Where the runs sit: parameters vs training tokens",
        ),
        key="pt_ch_frontier",
    )
    rows = []
    for r in (*q3, over, run):
        opt = scaling.compute_optimal(r.compute)
        rows.append(
            {
                "run": r.label,
                "N": scaling.format_count(r.n_params),
                "D (tokens)": scaling.format_count(r.n_tokens),
                "C (FLOPs)": f"{r.compute:.2e}",
                "tokens per parameter": round(r.tokens_per_param, 1),
                "predicted loss": round(r.loss(), 4),
                "optimum's loss at this C": round(opt.loss(), 4),
            }
        )
    st.dataframe(rows, hide_index=True, key="pt_ch_table")
    needed = scaling.compute_for_loss(over.loss())
    twin = scaling.compute_optimal(needed)
    show_code(scaling.predicted_loss, scaling.compute_optimal)
    st.markdown(
        f"**Q3:** both options cost {scaling.Q3_SMALL.compute:.1e} FLOPs; 7B × 100B predicts "
        f"{scaling.Q3_SMALL.loss():.3f} and 70B × 10B predicts {scaling.Q3_LARGE.loss():.3f} nats/token. "
        f"**Overtrained:** 8B × 15T reaches {over.loss():.3f}; a compute-optimal run gets there with "
        f"{needed:.2e} FLOPs ({over.compute / needed:.1f}× less training compute) but a "
        f"{scaling.format_count(twin.n_params)} model that costs {twin.n_params / over.n_params:.1f}× more per "
        "generated token to serve."
    )


def _same_run(a: scaling.TrainingRun, b: scaling.TrainingRun) -> bool:
    return math.isclose(a.n_params, b.n_params, rel_tol=1e-6) and math.isclose(a.n_tokens, b.n_tokens, rel_tol=1e-6)


# -- the page ------------------------------------------------------------------------------------------


def demo() -> None:
    demo_tabs(
        "pretraining",
        [
            ("Next-token explorer", lambda: explorer(loaded)),
            ("Watch it learn", lambda: watch_it_learn(loaded.device)),
            ("Training timeline", lambda: timeline(loaded)),
            ("Data quality", lambda: data_quality(loaded.device)),
            ("Chinchilla", chinchilla),
        ],
    )


with demo_area:
    demo()
