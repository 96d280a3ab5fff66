"""single_threaded_blas: one BLAS thread inside, the previous setting restored outside."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

from scaling.threads import single_threaded_blas


def _blas_threads() -> list[int]:
    return [m["num_threads"] for m in threadpool_info() if m["user_api"] == "blas"]


def test_limit_holds_through_nesting_and_is_restored_by_the_outer_context() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert max(before) == 2  # some BLAS library runs two threads here
        with single_threaded_blas():
            assert all(n == 1 for n in _blas_threads())
            with single_threaded_blas():
                assert all(n == 1 for n in _blas_threads())
            assert all(n == 1 for n in _blas_threads())  # the inner exit keeps the limit
        assert _blas_threads() == before
        with single_threaded_blas():  # usable again after the outer exit
            assert all(n == 1 for n in _blas_threads())
        assert _blas_threads() == before
