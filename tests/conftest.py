"""Shared test fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny ops run fastest on one thread, and then do not stall in OpenMP barriers when other
    processes share the cores (that made tests/test_rssm.py 4x slower on a busy 2-core machine).
    Files opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
