"""The DPO page's demos (pages/4_DPO.py)."""
