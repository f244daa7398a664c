"""Every setting of the four pages round-trips through the URL, and presenter mode hides the advanced ones.

A link with non-default values opens the page with exactly those values; garbage or out-of-range values are
clamped or ignored with a notice, never a traceback; moving a widget rewrites the URL; "Reset this page" puts
every setting back to its default, in the widgets and in the URL. With ?presenter=1 the advanced controls are not
drawn, yet their values (from the URL) stay in force and reappear when presenter mode is switched off.
"""

import pytest

from llmlab import collapse, dataquality, dpo, kto, ppo, refusal, reward, rl_algorithms, rlhf, rlhf_budget, sft
from llmlab.pretrain import PretrainConfig
from tests.conftest import browser_control, has_chart, instant, open_page, texts
from ui.settings import KEPT, to_url

SFT, RLHF, DPO, PRETRAINING = "pages/2_SFT.py", "pages/3_RLHF.py", "pages/4_DPO.py", "pages/1_Pretraining.py"
PREFIXES = {SFT: "sft_", RLHF: "rl_", DPO: "dpo_", PRETRAINING: "pt_"}
# The vote tab's settings: drawn for the presenter only (the training part), tested in tests/test_page_crowd.py.
CROWD_KEYS = {
    "rl_crowd_rm_steps",
    "rl_crowd_dpo_steps",
    "dpo_crowd_rm_steps",
    "dpo_crowd_dpo_steps",
    "dpo_crowd_kto_steps",
}
FIRST = "the first option"  # an expected value: the widget's first option
WIDGET_KINDS = ("slider", "select_slider", "selectbox", "radio", "toggle", "number_input", "multiselect")
RM_UNBIASED, RM_BIASED = "reward model trained on unbiased pairs", "reward model trained on biased pairs (longer wins)"

RUN, QUALITY, LORA, WRONG = sft.SFTRunConfig(), sft.QualityConfig(), sft.LoraComparisonConfig(), sft.WrongFactsConfig()
RM, RL, RLOO, DPO_RUN = reward.RewardRunConfig(), ppo.PPOConfig(), rlhf.RLRunConfig(), dpo.DPOSettings()
COMPARISON = rl_algorithms.Comparison()
PRE, NOISE = PretrainConfig(), dataquality.NoiseConfig()
COLLAPSE, BUDGET, REFUSAL, KTO = (
    collapse.CollapseConfig(),
    rlhf_budget.BudgetConfig(),
    refusal.RefusalConfig(),
    kto.KTOSettings(),
)
DEFAULTS = {
    PRETRAINING: {
        "pt_temperature": 1.0,
        "pt_top_k": 0,
        "pt_top_p": 1.0,
        "pt_shown": 10,
        "pt_live_steps": PRE.steps,
        "pt_live_lr": PRE.learning_rate,
        "pt_live_batch": PRE.batch_size,
        "pt_dq_kind": NOISE.kind,
        "pt_dq_noise": 0.3,
        "pt_dq_steps": NOISE.steps,
        "pt_ch_n": 7.0,
        "pt_ch_d": 100.0,
        "pt_ch_mode": "parameters and tokens",
        "pt_ch_c": 21.6,
    },
    SFT: {
        "sft_mask_example": FIRST,
        "sft_mask_every_token": False,
        "sft_live_samples": RUN.samples,
        "sft_live_steps": RUN.max_steps,
        "sft_live_lr": RUN.learning_rate,
        "sft_live_completion_only": True,
        "sft_live_freeze": True,
        "sft_q_polished": QUALITY.polished_samples,
        "sft_q_mediocre": QUALITY.mediocre_samples,
        "sft_q_steps": QUALITY.max_steps,
        "sft_lora_rank": LORA.lora_rank,
        "sft_lora_steps": LORA.max_steps,
        "sft_lora_lr": LORA.lora_learning_rate,
        "sft_wrong_steps": WRONG.max_steps,
        "sft_q_seed": 0,
        "sft_wrong_side_by_side": WRONG.side_by_side,
        "sft_wrong_freeze": WRONG.freeze_embeddings,
        "sft_mc_temperature": COLLAPSE.temperature,
        "sft_mc_generations": COLLAPSE.generations,
        "sft_mc_real": COLLAPSE.real_fraction,
        "sft_mc_steps": COLLAPSE.max_steps,
        "sft_mc_seed": COLLAPSE.seed,
    },
    RLHF: {
        "rl_rm_biased": False,
        "rl_rm_steps": RM.max_steps,
        "rl_rm_lr": RM.learning_rate,
        "rl_rm_pairs": RM.train_pairs,
        "rl_score_question": FIRST,
        "rl_sweep_question": "Where is Mexico?",
        "rl_sweep_reward": RM_BIASED,
        "rl_sweep_k": 32,
        "rl_sweep_temperature": 1.0,
        "rl_sweep_rewrites": True,
        "rl_sweep_beta": 0.1,
        "rl_online_reward": RM_BIASED,
        "rl_online_compare": [0.0],
        "rl_online_algorithm": "PPO",
        "rl_online_kl": RL.beta,
        "rl_online_steps": 25,
        "rl_online_lr": RL.learning_rate,
        "rl_algos_reward": RM_UNBIASED,
        "rl_algos_beta": COMPARISON.beta,
        "rl_algos_steps": COMPARISON.steps,
        "rl_overopt_reward": RM_UNBIASED,
        "rl_overopt_questions": 24,
        "rl_budget_pairs": BUDGET.pairs,
        "rl_budget_also": [],
        "rl_budget_seed": 0,
        "rl_amp_reward": RM_BIASED,
        "rl_amp_betas": [0.0, 1.0],
        "rl_amp_steps": 25,
        "rl_refuse_caution": REFUSAL.caution,
        "rl_refuse_compare": False,
        "rl_refuse_beta": REFUSAL.beta,
        "rl_refuse_steps": REFUSAL.ppo_steps,
        "rl_refuse_seed": 0,
    },
    DPO: {
        "dpo_loss_beta": 0.1,
        "dpo_loss_betas": [0.5, 1.0],
        "dpo_loss_example": FIRST,
        "dpo_beta": DPO_RUN.beta,
        "dpo_steps": DPO_RUN.steps,
        "dpo_lr": DPO_RUN.learning_rate,
        "dpo_nll": DPO_RUN.chosen_nll,
        "dpo_sweep_betas": list(dpo.SWEEP_BETAS),
        "dpo_sweep_steps": 150,
        "dpo_sweep_lr": DPO_RUN.learning_rate,
        "dpo_sweep_nll": DPO_RUN.chosen_nll,
        "dpo_rlhf_betas": [0.01, 0.1, 1.0],
        "dpo_rlhf_steps": RLOO.max_steps,
        "dpo_cover_kinds": ["capital"],
        "dpo_kto_steps": KTO.steps,
        "dpo_kto_beta": KTO.beta,
        "dpo_kto_lr": KTO.learning_rate,
        "dpo_kto_seed": 0,
        "dpo_kto_nll": DPO_RUN.chosen_nll,
    },
}
# A link with a valid, non-default value for every setting (URL values are text).
SHARED = {
    PRETRAINING: {
        "pt_temperature": "0.7",
        "pt_top_k": "5",
        "pt_top_p": "0.9",
        "pt_shown": "20",
        "pt_live_steps": "500",
        "pt_live_lr": "0.001",
        "pt_live_batch": "8",
        "pt_dq_kind": "repeated_lie",
        "pt_dq_noise": "0.5",
        "pt_dq_steps": "100",
        "pt_ch_n": "70",
        "pt_ch_d": "10",
        "pt_ch_mode": "a compute budget and parameters",
        "pt_ch_c": "23",
    },
    SFT: {
        "sft_mask_example": "continent: Where is Nigeria?",
        "sft_mask_every_token": "1",
        "sft_live_samples": "120",
        "sft_live_steps": "100",
        "sft_live_lr": "0.01",
        "sft_live_completion_only": "0",
        "sft_live_freeze": "0",
        "sft_q_polished": "50",
        "sft_q_mediocre": "2000",
        "sft_q_steps": "30",
        "sft_lora_rank": "4",
        "sft_lora_steps": "20",
        "sft_lora_lr": "0.001",
        "sft_wrong_steps": "40",
        "sft_q_seed": "3",
        "sft_wrong_side_by_side": "0",
        "sft_wrong_freeze": "0",
        "sft_mc_temperature": "1",
        "sft_mc_generations": "4",
        "sft_mc_real": "0.3",
        "sft_mc_steps": "40",
        "sft_mc_seed": "2",
    },
    RLHF: {
        "rl_rm_biased": "1",
        "rl_rm_steps": "200",
        "rl_rm_lr": "0.003",
        "rl_rm_pairs": "16",
        "rl_score_question": "Where is Peru?",
        "rl_sweep_question": "Where is Peru?",
        "rl_sweep_reward": RM_UNBIASED,
        "rl_sweep_k": "16",
        "rl_sweep_temperature": "1.3",
        "rl_sweep_rewrites": "0",
        "rl_sweep_beta": "0.01",
        "rl_online_reward": "correctness (verifiable, no reward model)",
        "rl_online_compare": "0.1,0.5",
        "rl_online_algorithm": "GRPO",
        "rl_online_kl": "0.2",
        "rl_online_steps": "50",
        "rl_online_lr": "0.001",
        "rl_algos_reward": RM_BIASED,
        "rl_algos_beta": "0.5",
        "rl_algos_steps": "10",
        "rl_overopt_reward": RM_BIASED,
        "rl_overopt_questions": "12",
        "rl_budget_pairs": "128",
        "rl_budget_also": "32,256",
        "rl_budget_seed": "1",
        "rl_amp_reward": RM_UNBIASED,
        "rl_amp_betas": "0.1",
        "rl_amp_steps": "30",
        "rl_refuse_caution": "0.5",
        "rl_refuse_compare": "1",
        "rl_refuse_beta": "1",
        "rl_refuse_steps": "30",
        "rl_refuse_seed": "2",
    },
    DPO: {
        "dpo_loss_beta": "2",
        "dpo_loss_betas": "0.01,1",
        "dpo_loss_example": "Write your own pair…",
        "dpo_beta": "0.5",
        "dpo_steps": "100",
        "dpo_lr": "0.001",
        "dpo_nll": "0",
        "dpo_sweep_betas": "0.02,0.2",
        "dpo_sweep_steps": "60",
        "dpo_sweep_lr": "0.0003",
        "dpo_sweep_nll": "2",
        "dpo_rlhf_betas": "0.05",
        "dpo_rlhf_steps": "20",
        "dpo_cover_kinds": "language,continent",
        "dpo_kto_steps": "30",
        "dpo_kto_beta": "0.5",
        "dpo_kto_lr": "0.001",
        "dpo_kto_seed": "1",
        "dpo_kto_nll": "0",
    },
}
# Garbage and out-of-range values: (URL text, the value the widget must show instead).
BAD = {
    SFT: {
        "sft_live_steps": ("1e9", 300),
        "sft_live_samples": ("-5", 10),
        "sft_live_lr": ("0.5", RUN.learning_rate),
        "sft_mask_every_token": ("maybe", False),
        "sft_mask_example": ("<script>alert(1)</script>", FIRST),
        "sft_q_mediocre": ("nan", QUALITY.mediocre_samples),
    },
    RLHF: {
        "rl_sweep_k": ("1000", 64),
        "rl_rm_pairs": ("abc", RM.train_pairs),
        "rl_sweep_temperature": ("inf", 1.0),
        "rl_sweep_question": ("Where is Atlantis?", "Where is Mexico?"),
        "rl_online_compare": ("0.1,zz,-1", [0.1]),
        "rl_sweep_rewrites": ("", True),
    },
    DPO: {
        "dpo_steps": ("-1", 10),
        "dpo_sweep_steps": ("12.5e3", 300),
        "dpo_sweep_lr": ("1e400", DPO_RUN.learning_rate),
        "dpo_loss_betas": ("0.1,,0.10,x", [0.1]),
        "dpo_cover_kinds": ("capital,🎉", ["capital"]),
        "dpo_loss_example": ("9" * 500, FIRST),
    },
}
# Presenter mode: (hidden advanced controls with a non-default value each, controls that stay, a demo that stays:
# a plotly chart's key, or a browser-computed demo's, ui/instant.py).
PRESENTER = {
    SFT: (
        {"sft_live_samples": "120", "sft_live_lr": "0.01", "sft_live_completion_only": "0", "sft_live_freeze": "0",
         "sft_lora_lr": "0.001"},
        ("sft_live_steps", "sft_lora_rank", "sft_q_polished", "sft_wrong_steps", "sft_mask_every_token"),
        "sft_mask_chart",
    ),
    RLHF: (
        {"rl_rm_lr": "0.003", "rl_sweep_k": "16", "rl_sweep_temperature": "1.3", "rl_online_lr": "0.001"},
        ("rl_sweep_beta", "rl_online_kl", "rl_online_steps", "rl_rm_biased", "rl_rm_steps", "rl_sweep_rewrites", "rl_online_compare"),
        "rl_sweep_live",
    ),
    DPO: (
        {"dpo_lr": "0.001", "dpo_sweep_lr": "0.0003"},
        ("dpo_beta", "dpo_steps", "dpo_sweep_betas", "dpo_sweep_steps", "dpo_rlhf_steps", "dpo_loss_betas", "dpo_loss_beta"),
        "dpo_loss_live",
    ),
    PRETRAINING: (
        {"pt_live_lr": "0.001", "pt_live_batch": "8"},
        ("pt_temperature", "pt_top_p", "pt_live_steps", "pt_dq_noise"),
        "pt_next_token",
    ),
}  # fmt: skip


def widget(at, key: str):
    """The widget with this key, whatever its kind, or the browser control of a browser-computed demo
    (ui/instant.py); None when the page did not draw it."""
    for kind in WIDGET_KINDS:
        try:
            return getattr(at, kind)(key=key)
        except KeyError:
            continue
    return browser_control(at, key)


def value_of(at, key: str):
    """The widget's value; for a widget its tab did not draw (Chinchilla draws N and D, or N and C), the
    session's kept value, which is what the next draw will show."""
    found = widget(at, key)
    return found.value if found is not None else at.session_state[KEPT][key]


def as_url(value) -> str:
    """How a widget's value is written in the URL."""
    return to_url(value)


def expected(at, key: str, value):
    return widget(at, key).options[0] if value == FIRST else value


def assert_defaults(at, page: str) -> None:
    for key, default in DEFAULTS[page].items():
        value = expected(at, key, default)
        assert value_of(at, key) == value, key
        assert at.query_params[key] == as_url(value), key  # the URL carries the default, not the old value


@pytest.mark.parametrize("page", [PRETRAINING, SFT, RLHF, DPO])
def test_a_shared_link_sets_every_widget_changes_rewrite_it_and_reset_restores_the_defaults(page):
    assert set(SHARED[page]) == set(DEFAULTS[page])  # every setting of the page is covered...
    at = open_page(page, SHARED[page])
    published = {k for k in at.query_params if k.startswith(PREFIXES[page])} - CROWD_KEYS
    assert published == set(DEFAULTS[page])  # ...and the page has no other
    for key, raw in SHARED[page].items():
        assert as_url(value_of(at, key)) == raw, key  # the widget shows the link's value
        assert at.query_params[key] == raw, key  # and the URL still says so
    assert not at.toast  # nothing was wrong with the link

    key = next(k for k in SHARED[page] if type(widget(at, k)).__name__ == "Slider")
    slider = at.slider(key=key)
    new = slider.min if slider.value != slider.min else slider.max
    slider.set_value(new).run()
    assert not at.exception and at.query_params[key] == as_url(new)  # moving a widget rewrites the link

    at.button(key="reset_page").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert_defaults(at, page)


@pytest.mark.parametrize("page", [SFT, RLHF, DPO])
def test_bad_link_values_are_clamped_or_ignored_with_a_notice(page):
    at = open_page(page, {key: raw for key, (raw, _) in BAD[page].items()})
    notices = " ".join(t.value for t in at.toast)
    for key, (_, value) in BAD[page].items():
        assert widget(at, key).value == expected(at, key, value), key
        assert f"'{key}" in notices, key  # each bad value says what it did
        assert at.query_params[key] == as_url(widget(at, key).value)  # the URL now holds the value in force


@pytest.mark.parametrize("page", [SFT, RLHF, DPO, PRETRAINING])
def test_presenter_mode_hides_the_advanced_controls_but_keeps_their_values(page):
    hidden, shown, chart = PRESENTER[page]
    at = open_page(page, {"presenter": "1", **hidden})
    for key in hidden:
        assert widget(at, key) is None, key  # not drawn for the projector
        assert at.query_params[key] == hidden[key], key  # but still part of the shared view
    for key in shown:
        assert widget(at, key) is not None, key
    assert has_chart(at, chart) or instant(at, chart)  # the demo itself still renders
    if page == DPO:  # a hidden value is the one the runs use: the offline tab trains with the live lr
        assert "lr 0.001" in texts(at)
        at.select_slider(key="dpo_beta").set_value(0.5).run()  # a rerun in presenter mode keeps it too
        assert at.query_params["dpo_lr"] == "0.001" and "lr 0.001" in texts(at)

    at.toggle(key="presenter").set_value(False).run()
    assert not at.exception, [e.message for e in at.exception]
    for key, raw in hidden.items():
        assert as_url(widget(at, key).value) == raw, key  # back on screen with the link's value


def test_a_link_shared_before_a_setting_was_renamed_still_sets_it():
    at = open_page(RLHF, {"rl_beta": "0.01", "rl_kl": "0.2"})  # the names before ui.settings.RENAMED
    assert widget(at, "rl_sweep_beta").value == 0.01 and widget(at, "rl_online_kl").value == 0.2
    assert at.query_params["rl_sweep_beta"] == "0.01" and "rl_beta" not in at.query_params  # the new name now
