"""The reward-model tab's "Score two answers" box: two typed answers to one question, scored by every reward model
of the session, with P(A preferred) and whether each answer is right. Not a demo itself: ui/demos/rlhf/
reward_model.py draws it under its run panel."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import preferences, reward
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.reward_models import reward_model_for, reward_options
from ui.settings import SettingsForm, option
from ui.text import md_escape

QUESTIONS = {q.text: q for q in preferences.all_questions()}


@dataclass(frozen=True)
class ScoreSettings:
    question: str = option("Question", next(iter(QUESTIONS)), choices=tuple(QUESTIONS))


def score_box(policy: LoadedModel) -> None:
    form = SettingsForm(ScoreSettings, "rl_score_")
    form.widget("question")
    q = QUESTIONS[form.done().question]
    st.session_state.setdefault("rl_score_a", preferences.answer_text(q, q.answer))
    st.session_state.setdefault("rl_score_b", preferences.padded(preferences.wrong_answers(q)[1], 1))
    c1, c2 = st.columns(2)
    answer_a = c1.text_area("Answer A", key="rl_score_a", height=80, max_chars=600)
    answer_b = c2.text_area("Answer B", key="rl_score_b", height=80, max_chars=600)
    if not answer_a.strip() or not answer_b.strip():
        st.info("Type both answers to see how each reward model scores them.", icon="✍️")
        return
    rows = []
    for choice in reward_options():
        run = reward_model_for(choice, policy.name, policy.device)
        a, b = reward.score(run.model, run.tokenizer, [q.prompt] * 2, [answer_a, answer_b]).tolist()
        rows.append(
            {
                "reward model": choice,
                "score A": round(a, 3),
                "score B": round(b, 3),
                "P(A preferred) = σ(A − B)": f"{reward.preference_probability(a, b):.1%}",
            }
        )
    st.dataframe(rows, hide_index=True)
    correct = [preferences.true_reward(q.prompt, answer) for answer in (answer_a, answer_b)]
    st.caption(
        f"Correct? A: {'yes' if correct[0] else 'no'}, B: {'yes' if correct[1] else 'no'} "
        f"(the right answer is {md_escape(q.answer)}). Scores are in logit units: only differences mean anything."
    )
