"""Two real server processes (``jod serve``, gunicorn) on one database: observers whose
requests alternate between them get one consistent design, and a logout in one process is
honoured by the other."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from annotation_app import create_app, default_config
from annotation_app.accounts import add_user, assign
from annotation_app.campaigns import create_campaign
from annotation_app.db import get_db
from annotation_app.models import PairCount, Trial
from tests.app.conftest import PASSWORD
from tests.app.test_scheduler import assert_exact_balance

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home: Path, db_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jodkit", "serve", "--home", str(home), "--db", db_url]
    cmd += ["--port", str(port), "--workers", "1", "--threads", "4", "--no-example"]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if requests.get(f"{base}/auth/login", timeout=2).ok:
                return proc, base
        except requests.RequestException:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
    raise RuntimeError("server did not start")


@pytest.fixture
def two_servers(db_url, tmp_path, make_spec):
    home = tmp_path / "home"
    app = create_app(default_config(home) | {"DATABASE_URL": db_url})
    with app.app_context():
        db = get_db()
        campaign = create_campaign(db, make_spec(length=12), home / "images").campaign
        for i in range(6):
            add_user(db, f"o{i}", PASSWORD, "observer")
            assign(db, f"o{i}", campaign.name)
        cid = campaign.id
    app.extensions["jodkit_db"].kw["bind"].dispose()
    servers = [serve(home, db_url) for _ in range(2)]
    yield app, cid, [base for _, base in servers]
    for proc, _ in servers:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def csrf(text: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', text).group(1)


def log_in(base: str, name: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    for _ in range(50):  # the global login limit may answer 429: wait and retry
        token = csrf(http.get(f"{base}/auth/login", timeout=30).text)
        form = {"username": name, "password": PASSWORD, "csrf_token": token}
        r = http.post(f"{base}/auth/login", data=form, allow_redirects=False, timeout=30)
        if r.status_code == 302:
            return http, csrf(http.get(f"{base}/", timeout=30).text)
        assert r.status_code == 429, r.status_code
        time.sleep(0.3)
    raise AssertionError("could not log in")


def test_two_processes_share_one_design(two_servers):
    app, cid, bases = two_servers

    def observer(i: int) -> int:
        http, token = log_in(bases[i % 2], f"o{i}")
        headers = {"X-CSRFToken": token}
        r = http.post(
            f"{bases[0]}/campaigns/{cid}/per_scene/noise",
            headers=headers,
            allow_redirects=False,
            timeout=30,
        )
        sid = r.headers["Location"].rsplit("/", 1)[1]
        answered = 0
        for k in range(100):  # every request goes to the other process than the last
            base = bases[(i + k) % 2]
            trials = http.get(f"{base}/api/sessions/{sid}/next", timeout=30).json()["trials"]
            if not trials:
                return answered
            body = {"token": uuid.uuid4().hex, "choice": "left", "rt_ms": 700}
            other = bases[(i + k + 1) % 2]
            r = http.post(
                f"{other}/api/trials/{trials[0]['id']}/answer",
                json=body,
                headers=headers,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            answered += 1
        return answered

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(observer, range(6))) == [12] * 6
    with app.app_context():
        db = get_db()
        trials = list(db.scalars(select(Trial).where(Trial.campaign_id == cid)))
        rows = list(db.scalars(select(PairCount).where(PairCount.campaign_id == cid)))
    assert len(trials) == 72 and all(t.answered_at is not None for t in trials)
    assert_exact_balance(trials)  # A-left/B-left within one per pair, across processes
    design = Counter((t.image_a_id, t.image_b_id, t.left_shown) for t in trials)
    for row in rows:  # no planning lost an update of another process's (campaign lock)
        assert (row.left_a, row.left_b) == (
            design[row.image_a_id, row.image_b_id, "A"],
            design[row.image_a_id, row.image_b_id, "B"],
        )
    assert sum(r.planned for r in rows) == 72 and len(rows) == 18
    per_pair = Counter((t.image_a_id, t.image_b_id) for t in trials)
    assert min(per_pair.values()) >= 2  # every pair reached the target (2 per pair)
    per_observer = Counter((t.user_id, t.image_a_id, t.image_b_id) for t in trials)
    assert max(per_observer.values()) == 1  # max_per_observer: 1, across processes


def test_a_logout_in_one_process_holds_in_the_other(two_servers):
    _app, _cid, (a, b) = two_servers
    http, token = log_in(a, "o0")
    assert http.get(f"{b}/", timeout=30).status_code == 200  # one login, both processes
    copied = http.cookies.get("session")
    assert http.post(f"{a}/auth/logout", headers={"X-CSRFToken": token}, timeout=30).ok
    thief = requests.Session()
    thief.cookies.set("session", copied)
    assert thief.get(f"{b}/", allow_redirects=False, timeout=30).status_code == 302
    assert thief.get(f"{b}/api/sessions/1/next", timeout=30).status_code == 401
