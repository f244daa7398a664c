"""The RLHF page's demos (pages/3_RLHF.py)."""
