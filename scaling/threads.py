"""One BLAS thread while solving.

The solvers' matrices are small (N x N, N up to ~1000): BLAS threads cost more to start and
synchronise than they save, and on a busy 2-core machine they made one 200-condition solve
up to 60 times slower (docs/performance.md). Parallelism comes from the bootstrap's process
pool instead.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from functools import cache

from threadpoolctl import ThreadpoolController

_state = threading.local()


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspecting the loaded libraries is the slow part: once


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Context in which BLAS (OpenBLAS, MKL, ...) uses one thread.

    Nested uses in the same thread cost nothing: setting the limit takes about 50 us, which
    each of a bootstrap's thousands of re-solves would otherwise pay inside the limit its
    worker already holds.
    """
    if getattr(_state, "depth", 0):
        yield
        return
    with _controller().limit(limits=1, user_api="blas"):
        _state.depth = 1
        try:
            yield
        finally:
            _state.depth = 0
