"""The pre-training page's demos (pages/1_Pretraining.py)."""
