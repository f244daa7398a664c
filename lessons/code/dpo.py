# trl's DPOTrainer — the interface is as simple as SFTTrainer
# why: run from the repo root; the project's data helpers (llmlab/) are not pip-installed, so the root goes on the import path
import os, sys, tempfile
sys.path.insert(0, ".")
from trl import DPOTrainer, DPOConfig
# why: no network here: the project's own preference pairs (tiny-sft's answers, labelled by correctness) instead of a hub data set
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmlab.preferences import preference_pairs
# why: the card leaves sft_model and tok undefined: the bundled SFT model, and a second copy of it as the reference (trl refuses one object as both: ValueError)
tok = AutoTokenizer.from_pretrained("models/tiny-sft")
sft_model = AutoModelForCausalLM.from_pretrained("models/tiny-sft")
ref_model = AutoModelForCausalLM.from_pretrained("models/tiny-sft")
# Preference data: each row has prompt / chosen / rejected
# why: the pairs (models/tiny-sft/preferences.json, read by llmlab) as a datasets.Dataset built in memory
ds = Dataset.from_list(preference_pairs(split="train"))
trainer = DPOTrainer(
    model=sft_model, # the SFT model from the previous step
    # why: trl needs a separate reference model object (the same object as model= raises a ValueError)
    ref_model=ref_model, # reference model (frozen)
    # why: API renamed in trl 0.12: tokenizer= became processing_class=
    train_dataset=ds, processing_class=tok,
    # why: LLMLAB_SNIPPET_STEPS (the tests) cuts the epoch short
    args=DPOConfig(beta=0.1, num_train_epochs=1, max_steps=int(os.environ.get("LLMLAB_SNIPPET_STEPS", -1)),
                   # why: a 1M-parameter model needs a far larger step than a 1B one (5e-7 leaves it where it was); a temporary output_dir, never the repo
                   learning_rate=2e-4, output_dir=tempfile.mkdtemp(),
                   # why: CPU (trl defaults to bf16, which needs a GPU); no tracker, no checkpoints; log every step to compare the first and last margins
                   use_cpu=True, report_to="none", save_strategy="no", logging_steps=1),
)
trainer.train() # done — quality roughly matches RLHF at far less effort
# why: show that it learned: the reward margin (chosen minus rejected implicit reward) trl logged at the first and the last step
margins = [log["rewards/margins"] for log in trainer.state.log_history if "rewards/margins" in log]
print(f"DPO rewards/margins: first step {margins[0]:.3f} -> last step {margins[-1]:.3f} ({len(margins)} steps)")
