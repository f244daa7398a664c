"""Streamlit helpers shared by the pages (the frame, card rendering, run panels).

Importing `ui` first sets the thread environment torch needs on a shared 2-core server: OpenMP threads
that sleep instead of spinning, and no tokenizers thread pool (both must be set before torch loads).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# ...but a short spin before sleeping (~0.1 ms; libgomp cuts it to 1,000 turns itself when threads outnumber
# cores, as on a busy server): without it every small op of a training step waited for sleeping threads
# to wake (pre-training ~15% slower: 7.2-8.3k vs 8.7-9.0k tokens/s on 2 cores).
os.environ.setdefault("GOMP_SPINCOUNT", "100000")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
