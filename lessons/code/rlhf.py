# trl's PPOTrainer wraps all three stages (here, just the step-3 skeleton)
# why: run from the repo root; the project's data helpers (llmlab/) are not pip-installed, so the root goes on the import path
import os, sys, tempfile, torch
sys.path.insert(0, ".")
# why: trl 1.16 has no PPOTrainer: RLOOTrainer is its closest online-RL trainer (the same sample, score, update loop; a leave-one-out baseline replaces PPO's value model)
from trl import RLOOTrainer, RLOOConfig
from transformers import pipeline
# why: the card leaves sft_model, tok and its data undefined: here the bundled SFT model, its tokenizer, and the project's questions as a dataset of prompts
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmlab.preferences import questions
tok = AutoTokenizer.from_pretrained("models/tiny-sft")
sft_model = AutoModelForCausalLM.from_pretrained("models/tiny-sft")
dataset = Dataset.from_list([{"prompt": q.prompt} for q in questions("train")])
# why: no network here: the bundled reward model (trained from tiny-sft by scripts/train_reward.py; it ships without a tokenizer, so tiny-sft's), its raw score rather than a sigmoid
reward = pipeline("text-classification", model="models/reward-models/4e5f1405a698e892",
                  tokenizer=tok, function_to_apply="none")
# why: trl 1.16's RLOOTrainer runs the card's loop (generate, score, step) itself and has no generate() or step(): it asks a reward function to score the answers it samples
def rm_scores(prompts, completions, **kwargs):
    # RM scores each (higher = more aligned with human preference)
    # why: trl's completions come without the end-of-text token the reward model was trained with
    return [reward(p + r + tok.eos_token)[0]["score"] for p, r in zip(prompts, completions)]
# why: a before/after to print: 4 sampled answers to each of the same 24 questions, scored by the reward model (eval mode: train() leaves activation checkpointing on, and generate() then writes garbage)
def mean_score(prompts=dataset["prompt"][:24], samples=4):
    torch.manual_seed(0)  # the same random draws before and after: only the policy differs
    generate = pipeline("text-generation", model=sft_model.eval(), tokenizer=tok)
    answers = [a["generated_text"] for p in prompts for a in generate(
        p, max_new_tokens=24, do_sample=True, num_return_sequences=samples, return_full_text=False)]
    return sum(rm_scores([p for p in prompts for _ in range(samples)], answers)) / len(answers)
before = mean_score()
# why: RLOOTrainer in PPOTrainer's place: its batch counts answers (8 prompts x 4 samples each); short answers (a 128-token context); a step size a 1M model feels (trl's 1e-6 barely moves it); CPU; no tracker, no checkpoints, a temporary output_dir
# --- the RL step: trl's RLOOTrainer (a project-written PPO may replace this part) ---
rloo = RLOOTrainer(args=RLOOConfig(per_device_train_batch_size=8 * 4, num_generations=4,
                                   max_completion_length=24, learning_rate=1e-4,
                                   max_steps=int(os.environ.get("LLMLAB_SNIPPET_STEPS", 8)),
                                   output_dir=tempfile.mkdtemp(), use_cpu=True,
                                   report_to="none", save_strategy="no", logging_steps=1),
                   model=sft_model, processing_class=tok, reward_funcs=rm_scores, train_dataset=dataset)
rloo.train()  # sample 4 answers per prompt, score them with rm_scores, one policy-gradient step; max_steps times
print(f"mean RM score of 4 sampled answers to each of 24 questions: before {before:.3f} -> after {mean_score():.3f}")
