"""Load and crash test of the annotation app over its real HTTP API.

Starts ``jod serve`` (waitress) on SQLite or PostgreSQL, lets N simulated observers (one
process each) answer as fast as they can for D seconds, reports judgments/s and p50/p99
latency of next-pair and submit, then SIGKILLs the server mid-load, restarts it while the
clients keep answering (resending unacknowledged answers, as the browser does) and checks
that every acknowledged judgment, before and after the kill, is in the export exactly once.
Traffic goes to 127.0.0.1 only; the number of clients and the duration are bounded.

    python benchmarks/load_test.py --observers 50 --seconds 60 [--db postgresql+psycopg://...]

``--conditions N --sampling active|balanced`` runs the observers on a campaign of one scene
with N images instead of the example campaign (``--no-crash``: the latency phase only),
to compare the next-pair latency of active sampling with the balanced design's.
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
CAMPAIGN = {"id": 1, "attribute": "detail"}
"""The campaign and attribute the observers judge (the example campaign unless
``--conditions`` creates another)."""


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
        except requests.RequestException:  # refused, or (restart under load) slow to answer
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def observer(
    base: str, name: str, until: float, kill_at: float, out: mp.Queue, campaign: dict
) -> None:
    """Log in once, answer as fast as possible; keep an unacknowledged answer and resend it.

    Like the browser's outbox: an answer whose response never came is resent with the same
    token until acknowledged, so a server-side "duplicate" means it had been stored before
    the connection dropped. After a connection failure the client logs in again once.
    """
    CAMPAIGN.update(campaign)  # a spawned process starts from the module's defaults
    next_ms, submit_ms, acked, errors, duplicates = [], [], [], 0, 0
    s, sid, outbox, relogin = None, None, None, True
    while time.time() < until:
        try:
            if relogin:
                s, sid = login_and_start(base, name)
                relogin = False
            if outbox is not None:
                trial_id, answer = outbox
                r = s.post(f"{base}/api/trials/{trial_id}/answer", json=answer, timeout=30)
                if r.status_code == 200:
                    duplicates += r.json()["status"] == "duplicate"
                    acked.append((trial_id, answer["token"], time.time() < kill_at))
                outbox = None
                continue
            if sid is None:
                sid = start_sitting(base, s)
            t0 = time.perf_counter()
            body = s.get(f"{base}/api/sessions/{sid}/next", timeout=30).json()
            next_ms.append(1000 * (time.perf_counter() - t0))
            if not body["trials"]:
                sid = None  # sitting finished: open the next one (no new login)
                continue
            trial = body["trials"][0]
            outbox = (trial["id"], {"token": uuid.uuid4().hex, "choice": "left", "rt_ms": 300})
            t0 = time.perf_counter()
            r = s.post(f"{base}/api/trials/{trial['id']}/answer", json=outbox[1], timeout=30)
            submit_ms.append(1000 * (time.perf_counter() - t0))
            if r.status_code == 200:
                acked.append((trial["id"], outbox[1]["token"], time.time() < kill_at))
                outbox = None
        except (requests.RequestException, ValueError, AttributeError, KeyError):
            errors += 1
            relogin = True  # the outbox survives: it is resent after logging in again
            time.sleep(0.2)
    out.put((next_ms, submit_ms, acked, errors, duplicates))


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
    # The login starts a new session cookie, and with it a new CSRF token.
    page = s.get(f"{base}/", timeout=30).text
    s.headers["X-CSRFToken"] = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return s, start_sitting(base, s)


def start_sitting(base: str, s: requests.Session) -> str:
    """Open (or resume) a per-scene sitting on the campaign; its session id."""
    url = f"{base}/campaigns/{CAMPAIGN['id']}/per_scene/{CAMPAIGN['attribute']}"
    start = s.post(url, allow_redirects=False, timeout=30)
    return start.headers["Location"].rsplit("/", 1)[1]


def add_users(
    home: Path, db: str | None, n: int, conditions: int | None = None, sampling: str = ""
) -> None:
    """Observer accounts lt0..lt{n-1}, created through the app's own code and assigned to
    the campaign; with ``conditions``, first a campaign of one scene with that many images."""
    from PIL import Image as PILImage

    from annotation_app import create_app, default_config
    from annotation_app.accounts import add_user, assign
    from annotation_app.campaigns import create_campaign
    from annotation_app.db import get_db
    from annotation_app.models import Campaign

    config = default_config(home) | ({"DATABASE_URL": db} if db else {})
    app = create_app(config | {"ACTIVE_BACKGROUND": False})
    with app.app_context():
        if conditions:
            folder = home / "load-images" / "scene"
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(0)
            for k in range(conditions):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                PILImage.fromarray(pixels).save(folder / f"c{k:03d}.png")
            spec = home / "load.yaml"
            spec.write_text(
                f"name: load-{conditions}-{sampling}\nimage_root: load-images\n"
                "scenes: [{name: scene, images: scene}]\n"
                "attributes: [{name: detail, question: 'Which is sharper?'}]\n"
                f"sampling: {sampling}\nsession: {{length: 200}}\ndisplay: {{size: 64}}\n"
            )
            created = create_campaign(get_db(), spec, Path(config["IMAGE_STORE"])).campaign
            CAMPAIGN.update(id=created.id, attribute="detail")
        name = get_db().get(Campaign, CAMPAIGN["id"]).name
        for i in range(n):
            add_user(get_db(), f"lt{i}", PASSWORD, "observer")
            assign(get_db(), f"lt{i}", name)


def planned_share(home: Path, db: str | None) -> tuple[int, int]:
    """Planned pairs handed out, and normal trials, in the campaign."""
    from sqlalchemy import func, select

    from annotation_app import create_app, default_config
    from annotation_app.db import get_db
    from annotation_app.models import ActivePair, Trial

    config = default_config(home) | ({"DATABASE_URL": db} if db else {})
    with create_app(config | {"ACTIVE_BACKGROUND": False}).app_context():
        taken = get_db().scalar(
            select(func.count()).where(
                ActivePair.campaign_id == CAMPAIGN["id"], ActivePair.session_id.is_not(None)
            )
        )
        normal = get_db().scalar(
            select(func.count()).where(Trial.campaign_id == CAMPAIGN["id"], Trial.kind == "normal")
        )
    return taken, normal


def run_load(base: str, n: int, seconds: float, kill_at: float = float("inf")):
    """n observer processes for ``seconds``; merged latencies, acks, errors, duplicates."""
    out: mp.Queue = mp.Queue()
    until = time.time() + seconds
    args = [(base, f"lt{i}", until, kill_at, out, dict(CAMPAIGN)) for i in range(n)]
    procs = [mp.Process(target=observer, args=a) for a in args]
    for p in procs:
        p.start()
    return procs, out


def collect(procs: list, out: mp.Queue) -> tuple[list, list, list, int, int]:
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    merged = [[x for r in results for x in r[k]] for k in range(3)]
    return *merged, sum(r[3] for r in results), sum(r[4] for r in results)


def export_rows(home: Path, db: str | None) -> tuple[list[tuple[int, str]], int]:
    """(trial id, answer token) of every answered trial, and the number of rows in the
    exported trial tables (``trials_frame``, what ``jod export`` writes)."""
    env = {**os.environ, "JODKIT_HOME": str(home)}
    code = (
        "import sys; from annotation_app import create_app, default_config;"
        "from annotation_app.db import get_db; from annotation_app.models import Trial, Campaign;"
        "from annotation_app.export import trials_frame;"
        "from sqlalchemy import select; from pathlib import Path;"
        "c = default_config(Path(sys.argv[1]));"
        "c.update({'DATABASE_URL': sys.argv[2]} if sys.argv[2] else {});"
        "app = create_app(c); ctx = app.app_context(); ctx.push(); db = get_db();"
        "camp = db.get(Campaign, 1);"
        "print(sum(len(trials_frame(db, camp, t)) for t in ('per_scene', 'cross_content')));"
        "print('\\n'.join(f'{i} {k}' for i, k in db.execute("
        "select(Trial.id, Trial.answer_token).where(Trial.answered_at.is_not(None)))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(home), db or ""], capture_output=True, text=True, env=env
    )
    lines = done.stdout.split("\n")
    rows = [(int(i), k) for i, k in (line.split() for line in lines[1:] if line.strip())]
    return rows, int(lines[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite)")
    parser.add_argument("--crash-seconds", type=float, default=30, help="crash phase length")
    parser.add_argument("--kill-after", type=float, default=8, help="SIGKILL this far in")
    parser.add_argument(
        "--conditions", type=int, default=None, help="one scene with this many images"
    )
    parser.add_argument("--sampling", choices=("balanced", "active"), default="balanced")
    parser.add_argument("--no-crash", action="store_true", help="skip the crash test")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="jod-load-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(home, port, args.db)
    add_users(home, args.db, args.observers, args.conditions, args.sampling)
    nxt, sub, acked, errors, _ = collect(*run_load(base, args.observers, args.seconds))
    p = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    print(f"backend: {'PostgreSQL' if args.db else 'SQLite'}; observers {args.observers}")
    print(f"judgments/s: {len(acked) / args.seconds:.1f} ({len(acked)} in {args.seconds:.0f} s)")
    print(f"next  p50 {p(nxt, 50):.1f} ms  p99 {p(nxt, 99):.1f} ms")
    print(f"submit p50 {p(sub, 50):.1f} ms  p99 {p(sub, 99):.1f} ms; client errors {errors}")
    if args.sampling == "active":
        taken, normal = planned_share(home, args.db)
        print(f"active sampling: {taken} of {normal} normal trials came from planned batches")
    if args.no_crash:
        server.kill()
        return

    # Crash test: SIGKILL mid-load, restart at once while the clients keep going (they
    # resend unacknowledged answers and log in again), then every acknowledged judgment
    # must be in the export exactly once.
    kill_at = time.time() + args.kill_after
    procs, out = run_load(base, args.observers, args.crash_seconds, kill_at)
    time.sleep(max(0.0, kill_at - time.time()))
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    t0 = time.time()
    server = start_server(home, port, args.db)
    restart_s = time.time() - t0
    _, _, acked2, errors2, duplicates = collect(procs, out)
    rows, exported = export_rows(home, args.db)
    server.kill()
    stored = [trial for trial, _ in rows]
    token_of = dict(rows)
    all_acked = [(trial, token) for trial, token, _ in acked + acked2]
    missing = [t for t, k in all_acked if token_of.get(t) != k]
    before = sum(1 for *_, pre in acked2 if pre)
    print(
        f"crash test ({args.crash_seconds:.0f} s, SIGKILL at +{args.kill_after:.0f} s, "
        f"restart took {restart_s:.1f} s): {before} acknowledged before the kill, "
        f"{len(acked2) - before} after the restart; {len(all_acked)} acknowledged in all, "
        f"{len(stored)} stored, {exported} rows exported, {len(missing)} acknowledged but "
        f"missing, {len(stored) - len(set(stored))} stored twice; {duplicates} resent answers "
        f"recognised as duplicates by the server; client errors during the outage {errors2}"
    )
    bad = missing or len(stored) != len(set(stored)) or exported != len(stored)
    sys.exit(1 if bad or len(all_acked) != len(set(all_acked)) else 0)


if __name__ == "__main__":
    main()
