"""Pre-training: the card beside five demos, one tab each (ui/demos/pretraining/; compute in llmlab/).

1. Next-token explorer: the card's code example, live (one forward per prompt; sliders re-use the logits).
2. Watch it learn: a fresh tiny GPT-2 pre-trains in a background job; loss, probe distribution, samples.
3. Training timeline: the bundled tiny-base's saved history, instant.
4. Data quality: corrupt part of the corpus, compare short runs (precomputed view, live re-run).
5. Chinchilla: L(N, D) = E + A/N^alpha + B/D^beta and the compute-optimal split.

    streamlit run app.py   # then "1 · Pre-training" in the sidebar
"""

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.frame import Tab, demo_tabs
from ui.shell import begin_page

model_slot = begin_page("Pre-training", "📚")
with lesson_layout("pretraining"):  # the card is on screen; the demo fills in once the server has warmed up
    demo_tabs(
        "pretraining",
        model_slot,
        [
            Tab("Next-token explorer", "ui.demos.pretraining.explorer"),
            Tab("Watch it learn", "ui.demos.pretraining.live"),
            Tab("Training timeline", "ui.demos.pretraining.timeline"),
            Tab("Data quality", "ui.demos.pretraining.data_quality"),
            Tab("Chinchilla", "ui.demos.pretraining.chinchilla"),
        ],
    )
