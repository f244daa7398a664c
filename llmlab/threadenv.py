"""The thread environment torch needs on a shared 2-core server, in one place. It must be set before torch
loads, so every entry point (ui/, scripts/, bench/, tests/) calls `set_thread_env()` before importing torch,
and every server or worker it starts gets `THREAD_ENV` in its environment."""

import os

THREAD_ENV = {
    # OpenMP threads that sleep when idle instead of spinning, so a training run's workers do not take the
    # cores that other sessions' page reruns need...
    "OMP_WAIT_POLICY": "PASSIVE",
    # ...but after a short spin (~0.1 ms; libgomp cuts it to 1,000 turns itself when threads outnumber cores,
    # as on a busy server): without it every small op of a training step waited for sleeping threads to wake
    # (pre-training ~15% slower: 7.2-8.3k vs 8.7-9.0k tokens/s on 2 cores).
    "GOMP_SPINCOUNT": "100000",
    # No tokenizers thread pool: it warns and can deadlock after a fork.
    "TOKENIZERS_PARALLELISM": "false",
}


def set_thread_env() -> None:
    """Set THREAD_ENV in this process, keeping any value already set (call before importing torch)."""
    for name, value in THREAD_ENV.items():
        os.environ.setdefault(name, value)
