"""The SFT page's demos (pages/2_SFT.py)."""
