"""Supervised fine-tuning: the card beside six demos, one tab each (ui/demos/sft/; compute in llmlab/sft.py).

1. Loss mask: trl's own mask on one pair as token chips, the per-token loss, response only vs every token.
2. Live SFT: SFTTrainer on a copy of the model in a background job; held-out answers before and after.
3. Quality vs quantity: a few polished pairs vs many mediocre ones, same steps.
4. LoRA vs full: peft adapters vs every weight; trainable parameters, time, result.
5. Style, not knowledge: confidently wrong capitals in the data become the likely answer; the format spreads.
6. Model collapse: fine-tuned on its own answers, generation after generation; with and without real data.

    streamlit run app.py   # then "2 · Supervised fine-tuning" in the sidebar
"""

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.frame import Tab, demo_tabs
from ui.shell import begin_page

model_slot = begin_page("Supervised fine-tuning", "✍️")
with lesson_layout("sft"):  # the card is on screen; the demo fills in once the server has warmed up
    demo_tabs(
        "sft",
        model_slot,
        [
            Tab("Loss mask", "ui.demos.sft.loss_mask"),
            Tab("Live SFT", "ui.demos.sft.live"),
            Tab("Quality vs quantity", "ui.demos.sft.quality"),
            Tab("LoRA vs full", "ui.demos.sft.lora"),
            Tab("Style, not knowledge", "ui.demos.sft.wrong_facts"),
            Tab("Model collapse", "ui.demos.sft.collapse"),
        ],
    )
