"""llmlab.jobs: a training run's thread yields the CPU to page reruns (a lower priority, on Linux)."""

import os
import sys
import threading

import pytest

from llmlab import jobs


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_a_job_runs_at_a_lower_priority_than_the_page_threads():
    def work(job):
        import torch

        torch.ones(256, 256) @ torch.ones(256, 256)  # starts torch's worker threads for this thread
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    job = jobs.Job("nice", work).start()
    job.join(30)
    assert job.status == "done", job.error
    assert job.result == min(19, base + jobs.JOB_NICE) and jobs.JOB_NICE > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's stays as it was


def test_priority_can_be_left_alone():
    assert jobs.lower_thread_priority(0) is False
