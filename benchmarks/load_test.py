"""Load and crash test of the annotation app over its real HTTP API.

Starts ``jod serve`` (waitress) on SQLite or PostgreSQL, lets N simulated observers (one
process each) answer as fast as they can for D seconds, reports judgments/s and p50/p99
latency of next-pair and submit, then SIGKILLs the server mid-load, restarts it and checks
that every acknowledged judgment is in the export exactly once.

    python benchmarks/load_test.py --observers 50 --seconds 60 [--db postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import requests

PASSWORD = "load-test-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, db: str | None) -> subprocess.Popen:
    code = "from jodkit.cli import app; app()"
    cmd = [sys.executable, "-c", code, "serve", "--home", str(home), "--port", str(port)]
    cmd += ["--threads", "32"] + (["--db", db] if db else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):  # the first start renders the example campaign
        try:
            requests.get(f"http://127.0.0.1:{port}/auth/login", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def observer(base: str, name: str, until: float, out: mp.Queue) -> None:
    """Log in, open a session, answer as fast as possible; report latencies and acks."""
    next_ms, submit_ms, acked, errors = [], [], [], 0
    s, sid = None, None
    while time.time() < until:
        try:
            if sid is None:
                s, sid = login_and_start(base, name)
            t0 = time.perf_counter()
            body = s.get(f"{base}/api/sessions/{sid}/next", timeout=30).json()
            next_ms.append(1000 * (time.perf_counter() - t0))
            if not body["trials"]:
                sid = None  # session finished: open the next one
                continue
            trial = body["trials"][0]
            answer = {"token": uuid.uuid4().hex, "choice": "left", "rt_ms": 300}
            t0 = time.perf_counter()
            r = s.post(f"{base}/api/trials/{trial['id']}/answer", json=answer, timeout=30)
            submit_ms.append(1000 * (time.perf_counter() - t0))
            if r.status_code == 200:
                acked.append(trial["id"])
        except (requests.RequestException, ValueError, AttributeError, KeyError):
            errors += 1
            time.sleep(0.05)
    out.put((next_ms, submit_ms, acked, errors))


def login_and_start(base: str, name: str) -> tuple[requests.Session, str]:
    """A logged-in HTTP session with the CSRF header set, and an open sitting's id."""
    s = requests.Session()
    page = s.get(f"{base}/auth/login", timeout=30).text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    s.post(
        f"{base}/auth/login",
        data={"username": name, "password": PASSWORD, "csrf_token": token},
        timeout=30,
    )
    s.headers["X-CSRFToken"] = token
    start = s.post(f"{base}/campaigns/1/per_scene/detail", allow_redirects=False, timeout=30)
    return s, start.headers["Location"].rsplit("/", 1)[1]


def add_users(home: Path, db: str | None, n: int) -> None:
    """Observer accounts lt0..lt{n-1}, created through the app's own code."""
    from annotation_app import create_app, default_config
    from annotation_app.auth import add_user
    from annotation_app.db import get_db

    config = default_config(home) | ({"DATABASE_URL": db} if db else {})
    app = create_app(config)
    with app.app_context():
        for i in range(n):
            add_user(get_db(), f"lt{i}", PASSWORD, "observer")


def run_load(base: str, n: int, seconds: float) -> tuple[list, list, list, int]:
    out: mp.Queue = mp.Queue()
    until = time.time() + seconds
    procs = [mp.Process(target=observer, args=(base, f"lt{i}", until, out)) for i in range(n)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    merged = [[x for r in results for x in r[k]] for k in range(3)]
    return *merged, sum(r[3] for r in results)


def export_ids(home: Path, db: str | None) -> list[int]:
    """Trial ids of answered trials, read through the app's own export path."""
    env = {**os.environ, "JODKIT_HOME": str(home)}
    code = (
        "import sys; from annotation_app import create_app, default_config;"
        "from annotation_app.db import get_db; from annotation_app.models import Trial;"
        "from sqlalchemy import select; from pathlib import Path;"
        "c = default_config(Path(sys.argv[1]));"
        "c.update({'DATABASE_URL': sys.argv[2]} if sys.argv[2] else {});"
        "app = create_app(c); ctx = app.app_context(); ctx.push();"
        "print(' '.join(str(i) for i in get_db().scalars("
        "select(Trial.id).where(Trial.answered_at.is_not(None)))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(home), db or ""], capture_output=True, text=True, env=env
    )
    return [int(x) for x in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="jod-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(home, port, args.db)
    add_users(home, args.db, args.observers)
    nxt, sub, acked, errors = run_load(base, args.observers, args.seconds)
    p = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    print(f"backend: {'PostgreSQL' if args.db else 'SQLite'}; observers {args.observers}")
    print(f"judgments/s: {len(acked) / args.seconds:.1f} ({len(acked)} in {args.seconds:.0f} s)")
    print(f"next  p50 {p(nxt, 50):.1f} ms  p99 {p(nxt, 99):.1f} ms")
    print(f"submit p50 {p(sub, 50):.1f} ms  p99 {p(sub, 99):.1f} ms; client errors {errors}")

    # Crash test: SIGKILL mid-load, restart, every acknowledged judgment exactly once.
    killer = mp.Process(target=lambda: (time.sleep(3), os.kill(server.pid, signal.SIGKILL)))
    killer.start()
    _, _, acked2, errors2 = run_load(base, args.observers, 6)
    killer.join()
    server.wait()
    server = start_server(home, port, args.db)
    ids = export_ids(home, args.db)
    server.kill()
    all_acked = acked + acked2
    missing = set(all_acked) - set(ids)
    print(
        f"crash test: {len(all_acked)} acknowledged, {len(ids)} stored, "
        f"{len(missing)} acknowledged but missing, "
        f"{len(ids) - len(set(ids))} duplicates; errors during the kill {errors2}"
    )
    sys.exit(1 if missing or len(ids) != len(set(ids)) else 0)


if __name__ == "__main__":
    main()
