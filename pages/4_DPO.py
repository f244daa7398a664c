"""DPO: the card beside eight demos, one tab each (ui/demos/dpo/), all on a real tiny model with trl's DPOTrainer;
compute in llmlab/dpo.py (the loss, trl runs), llmlab/policy_eval.py (scoring) and llmlab/dpo_experiments.py.

1. The loss: −log σ(β·margin) and its gradient weight σ(−β·margin) for several β; the implicit reward
   β·log π/π_ref of one pair, with the policy's and the reference's log-probs.
2. Live DPO: a copy of tiny-sft trained on preference pairs in a background job; live trl metrics, before/after.
3. β sweep: one run per β on the same seed and data; held-out preference accuracy and KL against β, CSV export.
4. DPO vs RLHF: reward against KL on one chart, with wall time and models in memory.
5. Offline limit: DPO on capital questions only, scored on every kind of question.
6. Single annotator: a labeller who always prefers the longer answer vs one who prefers the right answer.
7. Beyond pairs: KTO: trl's KTOTrainer on single thumbs-up/down answers next to DPO on the same verdicts as pairs.
8. Vote as a room (ui/demos/crowd.py): the RLHF page's crowd votes; DPO on everyone's or one voter's.

    streamlit run app.py   # then "4 · DPO" in the sidebar
    # settings round-trip through the URL: ?dpo_beta=0.1&dpo_steps=50&dpo_lr=0.0002
"""

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.frame import Tab, demo_tabs
from ui.shell import begin_page

model_slot = begin_page("DPO", "🎯")
with lesson_layout("dpo"):  # the card is on screen; the demo fills in once the server has warmed up
    demo_tabs(
        "dpo",
        model_slot,
        [
            Tab("The loss", "ui.demos.dpo.loss"),
            Tab("Live DPO", "ui.demos.dpo.live"),
            Tab("What goes wrong", "ui.demos.dpo.diagnosis"),
            Tab("β sweep", "ui.demos.dpo.sweep"),
            Tab("DPO vs RLHF", "ui.demos.dpo.frontier"),
            Tab("Offline limit", "ui.demos.dpo.offline"),
            Tab("Single annotator", "ui.demos.dpo.annotator"),
            Tab("Beyond pairs: KTO", "ui.demos.dpo.kto"),
            Tab("Vote as a room", "ui.demos.dpo.vote"),  # one vote store and voter id with the RLHF page's tab
        ],
        above="ui.demos.dpo.start",  # what every demo trains
    )
