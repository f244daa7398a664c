"""The shared trainer settings: a new run's config must not reset the state of runs already training."""

from llmlab.trainargs import demo_trainer_args


def test_a_new_trainer_config_does_not_reset_accelerates_shared_state(tmp_path, monkeypatch):
    """Two sessions train at once: transformers' default resets accelerate's process-wide state whenever a
    TrainingArguments sets up its device, which made the other run fail mid-step (seen in CI)."""
    from accelerate.state import AcceleratorState, PartialState
    from trl import DPOConfig, SFTConfig

    resets = []
    original = AcceleratorState._reset_state
    monkeypatch.setattr(
        AcceleratorState, "_reset_state", staticmethod(lambda *a, **k: (resets.append(a), original(*a, **k)))
    )
    first = SFTConfig(output_dir=str(tmp_path / "a"), **demo_trainer_args("cpu", 0))
    assert str(first.device) == "cpu"
    state = dict(PartialState._shared_state)
    second = DPOConfig(output_dir=str(tmp_path / "b"), beta=0.1, **demo_trainer_args("cpu", 1))
    assert str(second.device) == "cpu" and second.seed == second.data_seed == 1
    assert resets == [] and PartialState._shared_state == state and PartialState().num_processes == 1


def test_every_demo_config_logs_each_step_and_writes_nothing():
    args = demo_trainer_args("cpu", 7)
    assert args["logging_steps"] == 1 and args["save_strategy"] == "no" and args["report_to"] == "none"
    assert args["use_cpu"] and args["seed"] == args["data_seed"] == 7
