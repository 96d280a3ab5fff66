"""One BLAS thread while solving.

The solvers' matrices are small (N x N, N up to ~1000): BLAS threads cost more to start and
synchronise than they save, and on a busy 2-core machine they made one 200-condition solve
up to 60 times slower (docs/performance.md). Parallelism comes from the bootstrap's process
pool instead.
"""

from __future__ import annotations

import contextlib
from functools import cache

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries is the slow part: once


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Context in which BLAS (OpenBLAS, MKL, ...) uses one thread."""
    return _controller().limit(limits=1, user_api="blas")
