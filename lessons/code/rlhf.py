# trl's PPOTrainer wraps all three stages (here, just the step-3 skeleton)
# why: run from the repo root; the project's PPO and data helpers (llmlab/) are not pip-installed, so the root goes on the import path
import os, sys, torch
sys.path.insert(0, ".")
# why: trl 1.16 has no PPOTrainer: the project's own, llmlab/ppo.py, with the card's generate/step API (it trains the model it is given in place, against a frozen copy of it as the reference)
from llmlab.ppo import PPOTrainer, PPOConfig
from transformers import pipeline
# why: the card leaves sft_model, tok and dataloader undefined: here the bundled SFT model, its tokenizer, and batches of 32 of the project's 96 training questions, going round them LLMLAB_SNIPPET_STEPS times (default 24: 8 passes)
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmlab.preferences import questions
tok = AutoTokenizer.from_pretrained("models/tiny-sft")
sft_model = AutoModelForCausalLM.from_pretrained("models/tiny-sft")
prompts = [q.prompt for q in questions("train")]
steps = int(os.environ.get("LLMLAB_SNIPPET_STEPS", 24))
dataloader = DataLoader([{"prompt": p} for p in (prompts * steps)[:32 * steps]], batch_size=32)
# why: no network here: the bundled reward model (trained from tiny-sft by scripts/train_reward.py; it ships without a tokenizer, so tiny-sft's), its raw score rather than a sigmoid
reward = pipeline("text-classification", model="models/reward-models/4e5f1405a698e892",
                  tokenizer=tok, function_to_apply="none")
# why: a before/after to print: 4 sampled answers to each of the same 24 questions, scored by the reward model (with the end-of-text token it was trained with, which generated text leaves out)
def mean_score(prompts=prompts[:24], samples=4):
    torch.manual_seed(0)  # the same random draws before and after: only the policy differs
    generate = pipeline("text-generation", model=sft_model, tokenizer=tok)
    answers = [a["generated_text"] for p in prompts for a in generate(
        p, max_new_tokens=24, do_sample=True, num_return_sequences=samples, return_full_text=False)]
    return sum(reward(p + a + tok.eos_token)[0]["score"]
               for p, a in zip([p for p in prompts for _ in range(samples)], answers)) / len(answers)
before = mean_score()
# why: the project's PPOConfig has no batch_size (a batch is whatever the loop passes: the dataloader's 32 questions, one answer each); its defaults: β = 1, lr 1e-4, 2 epochs x 2 mini-batches, answers up to 24 tokens
ppo = PPOTrainer(config=PPOConfig(),
                 model=sft_model, tokenizer=tok)
for batch in dataloader:
    responses = ppo.generate(batch["prompt"])
    # RM scores each (higher = more aligned with human preference)
    # why: generate() leaves out the end-of-text token the reward model was trained with
    scores = [reward(p + r + tok.eos_token)[0]["score"] for p, r in zip(batch["prompt"], responses)]
    ppo.step(batch["prompt"], responses, scores)
# why: show the effect: the same 96 answers' worth of sampling as before, from the trained model
print(f"mean RM score of 4 sampled answers to each of 24 questions: before {before:.3f} -> after {mean_score():.3f}")
