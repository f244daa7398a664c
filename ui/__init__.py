"""Streamlit helpers shared by the pages (the frame, card rendering, run panels).

Importing `ui` first sets the thread environment torch needs on a shared 2-core server: OpenMP threads
that sleep instead of spinning, and no tokenizers thread pool (both must be set before torch loads).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
