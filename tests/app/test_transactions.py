"""Transactions: on SQLite, reads run beside a writer (deferred BEGIN) while writes queue
on the write lock (BEGIN IMMEDIATE) instead of failing; under concurrent observers on both
databases planning stays serialised, so counterbalancing stays exact, repeats included."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select, text

from annotation_app.db import begin_write, get_db
from annotation_app.models import PairCount, Trial
from tests.app.conftest import add_observer
from tests.app.test_scheduler import assert_exact_balance


def sqlite_path(app) -> str:
    return app.config["DATABASE_URL"].removeprefix("sqlite:///")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_reads_run_beside_a_writer_and_writes_queue(app, campaign, login):
    cid = campaign()
    obs, staff = login("obs1"), login("exp")
    sid = obs.start(cid)
    trial = obs.next(sid)["trials"][0]  # plans a batch: the next request only reads
    writer = sqlite3.connect(sqlite_path(app), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another request holding the write lock
    try:
        with ThreadPoolExecutor(3) as pool:
            reads = [
                pool.submit(obs.client.get, f"/api/sessions/{sid}/next"),
                pool.submit(staff.client.get, f"/dashboard/{cid}"),
            ]
            assert [r.result(timeout=10).status_code for r in reads] == [200, 200]
            write = pool.submit(obs.answer, trial["id"])
            done = threading.Event()
            write.add_done_callback(lambda _f: done.set())
            assert not done.wait(0.5)  # the answer waits for the lock (busy timeout) ...
            writer.execute("COMMIT")
            assert write.result(timeout=10).status_code == 200  # ... and is then stored
    finally:
        writer.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_write_in_a_read_transaction_is_refused(app, campaign):
    campaign()
    with app.test_request_context("/"):
        db = get_db()
        db.execute(select(Trial.id)).all()  # a read-only request session
        with pytest.raises(RuntimeError, match="begin_write"):
            db.execute(text("UPDATE users SET role = role"))
        db.rollback()
        begin_write(db)
        db.execute(text("UPDATE users SET role = role"))
        db.commit()


def test_concurrent_observers_keep_exact_counterbalancing(app, campaign, login):
    cid = campaign(length=12, repeat=0.3)
    for i in range(3, 9):
        add_observer(app, f"obs{i}", cid)
    observers = [login(f"obs{i}") for i in range(1, 9) if i != 2] + [login("obs2")]
    start = threading.Barrier(len(observers))

    def run(obs) -> list[int]:
        sid = obs.start(cid)
        start.wait()
        codes = []
        while trials := obs.next(sid)["trials"]:
            codes.append(obs.answer(trials[0]["id"]).status_code)
        return codes

    with ThreadPoolExecutor(len(observers)) as pool:
        codes = [c for result in pool.map(run, observers) for c in result]
    assert codes == [200] * 12 * len(observers)  # no "database is locked", no deadlock
    with app.app_context():
        db = get_db()
        everything = list(db.scalars(select(Trial)))
        rows = list(db.scalars(select(PairCount).where(PairCount.campaign_id == cid)))
    kinds = assert_exact_balance(everything)  # repeats included, and swapped
    assert kinds["repeat"] > 0
    trials = [t for t in everything if t.kind in ("normal", "repeat")]
    design = Counter((t.image_a_id, t.image_b_id, t.left_shown) for t in trials)
    for row in rows:
        assert abs(row.left_a - row.left_b) <= 1  # exact counterbalancing
        assert design[row.image_a_id, row.image_b_id, "A"] == row.left_a
        assert design[row.image_a_id, row.image_b_id, "B"] == row.left_b
    assert sum(r.planned for r in rows) == len(trials)
