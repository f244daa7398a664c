"""Streamlit helpers shared by the pages (the frame, card rendering, run panels).

Importing `ui` first sets the thread environment torch needs on a shared 2-core server (llmlab/threadenv.py:
it must be set before torch loads).
"""

from llmlab.threadenv import set_thread_env

set_thread_env()
