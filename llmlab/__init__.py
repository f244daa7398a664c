"""llmlab: the compute core of LLM Training Lab (no Streamlit in here; pages and ui/ call into it)."""
