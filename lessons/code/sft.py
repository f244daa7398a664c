# The simplest possible SFT with trl, under 20 lines
# why: run from the repo root; the project's data helpers (llmlab/) are not pip-installed, so the root goes on the import path
import os, sys, tempfile
sys.path.insert(0, ".")
# why: no network here: the project's own instruction pairs, built in memory, instead of a hub data set
from datasets import Dataset
from trl import SFTTrainer, SFTConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmlab.instructions import polished_pairs, to_trl_rows
# why: no network here: the bundled tiny GPT-2 (models/tiny-base) instead of a hub id; trainer.train() changes only this in-memory copy
model_id = "models/tiny-base"
tok = AutoTokenizer.from_pretrained(model_id)
model = AutoModelForCausalLM.from_pretrained(model_id)
# why: the project's instruction/response pairs as trl's conversational prompt/completion rows (trl puts the loss on the completion only)
ds = Dataset.from_list(to_trl_rows(polished_pairs()[:1000]))
trainer = SFTTrainer(
    # why: API renamed in trl 0.12: tokenizer= became processing_class=
    model=model, processing_class=tok, train_dataset=ds,
    # why: a temporary output_dir, never the repo; LLMLAB_SNIPPET_STEPS (the tests) cuts the epoch short
    args=SFTConfig(output_dir=tempfile.mkdtemp(), num_train_epochs=1, max_steps=int(os.environ.get("LLMLAB_SNIPPET_STEPS", -1)),
                   # why: a 1M-parameter model needs a far larger step than a 1B one (2e-5 barely moves it); batches of 16 smooth the loss curve
                   per_device_train_batch_size=16, learning_rate=3e-3,
                   # why: CPU (trl defaults to bf16, which needs a GPU); no tracker, no checkpoints; log every step to compare the first and last loss
                   use_cpu=True, report_to="none", save_strategy="no", logging_steps=1),
)
trainer.train() # after this, the model "listens"
# why: show that it learned: the training loss trl logged at the first and the last step
losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
print(f"SFT loss: first step {losses[0]:.3f} -> last step {losses[-1]:.3f} ({len(losses)} steps)")
