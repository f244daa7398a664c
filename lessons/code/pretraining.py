# Feel the pre-training objective via Hugging Face: get the next-token distribution at any position
from transformers import AutoTokenizer, AutoModelForCausalLM
import torch
# why: no network here: the bundled tiny GPT-2 (models/tiny-base, pre-trained by this project) instead of the "gpt2" hub id
tok = AutoTokenizer.from_pretrained("models/tiny-base")
model = AutoModelForCausalLM.from_pretrained("models/tiny-base")
inputs = tok("The capital of France is", return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits # [1, seq_len, vocab_size]
next_id = logits[0, -1].argmax() # pick the most likely next token
print(tok.decode(next_id)) # " Paris"
