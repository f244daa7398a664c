"""RLHF: the card beside its three stages, live on the bundled models, one tab each (ui/demos/rlhf/; compute in
llmlab/reward.py and llmlab/rlhf.py, preference data in llmlab/preferences.py).

0. The pipeline, above the tabs: SFT model -> reward model -> RL policy, each with its state in this session.
1. Reward model: trl's RewardTrainer on preference pairs (unbiased or length-loving labels), live; held-out
   score histogram; a box that scores two typed answers.
2. KL sweep: the exact optimum π* ∝ π_ref·exp(r/β) over K sampled answers, β on a log slider (instant).
3. Online RL: trl's RLOOTrainer from a copy of tiny-sft with a KL coefficient, several β side by side.
4. PPO (llmlab/ppo.py: critic, GAE, clip), RLOO and GRPO side by side: reward vs KL, time, memory, advantages.
5. Over-optimisation: best-of-n (no training) and the session's RL runs, proxy and true reward against √KL,
   with Gao et al.'s fits and the peak.
6. SFT or RLHF? (small budget): the same N preference pairs teach SFT (chosen answers) and RLHF (reward model + PPO);
   both answer unseen questions (llmlab/rlhf_budget.py).
7. Stacked bias: labellers' -> reward model's -> policy's preference for the longer answer on one scale
   (llmlab/amplification.py).
8. Over-refusal: labellers who prefer a refusal whenever a question looks risky -> reward model -> PPO; refusal rate
   per kind of question and right answers before and after (llmlab/refusal.py).
9. Vote as a room: attendees judge answer pairs; the presenter trains on their votes.

    streamlit run app.py   # then "3 · RLHF"; settings round-trip: ?rl_sweep_beta=0.1&rl_online_kl=0.05
"""

import ui  # noqa: F401  (sets the torch thread environment before torch loads)
from ui.cards import lesson_layout
from ui.frame import Tab, demo_tabs
from ui.shell import begin_page

model_slot = begin_page("RLHF", "⚖️")
with lesson_layout("rlhf"):  # the card is on screen; the demo fills in once the server has warmed up
    demo_tabs(
        "rlhf",
        model_slot,
        [
            Tab("1 · Reward model", "ui.demos.rlhf.reward_model"),
            Tab("2 · KL sweep (exact, instant)", "ui.demos.rlhf.kl_sweep"),
            Tab("3 · Online RL (live)", "ui.demos.rlhf.online_rl"),
            Tab("4 · PPO, RLOO, GRPO", "ui.demos.rlhf.algorithms"),
            Tab("5 · Over-optimisation (best-of-n)", "ui.demos.rlhf.overopt"),
            Tab("SFT or RLHF? (small budget)", "ui.demos.rlhf.budget"),
            Tab("Stacked bias", "ui.demos.rlhf.amplification"),
            Tab("Over-refusal", "ui.demos.rlhf.refusal"),
            Tab("Vote as a room", "ui.demos.rlhf.vote"),
        ],
        above="ui.demos.rlhf.pipeline",
    )
