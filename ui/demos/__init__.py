"""The demos, one module each, one folder per concept page: `draw(loaded)` draws the demo, a frozen settings
dataclass (ui/settings.py) says what it can be set to, and the compute it shows lives in llmlab/. A page lists
its demos as `ui.frame.Tab(label, "ui.demos.<concept>.<demo>")`; the server's warm-up imports them all
(ui/warm.py).
"""
