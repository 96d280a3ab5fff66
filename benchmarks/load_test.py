"""Capacity curve and crash test of the annotation app over its real HTTP API.

Starts ``jod serve`` (gunicorn, ``--workers`` processes x ``--threads`` threads) on SQLite or
PostgreSQL and drives it from ONE asyncio process (aiohttp): ``--observers`` simulated
observers, each logged in once with its own cookie and connection. Like the trial page, an
observer gets its next pair with each answer's response, and asks for one (GET next) when
the page opens: before ``--reload-rate`` of the judgments it reloads. For every offered
rate (judgments/s over all observers, Poisson: exponential pauses between an observer's
judgments) it prints the achieved rate, p50/p99 latency of GET next and of the answer (which
returns the next pair), errors, and the server's CPU per judgment (all its processes, from
/proc) next to the load generator's and PostgreSQL's.

Then the crash test: at ``--kill-rate`` the server's whole process group is SIGKILLed
``--kill-after`` seconds in and restarted at once while the observers go on; like the
browser's outbox, an observer keeps an answer that was not acknowledged and resends it with
the same token. At the end every acknowledged answer must be stored under its token and
exported exactly once (``check_ledger``; tests/app/test_load_check.py shows it failing on
duplicates, and docs/performance.md a run against a deliberately broken export).

    python benchmarks/load_test.py --db postgresql+psycopg://u:pw@127.0.0.1/db \\
        --workers 4 --rates 50,100,150,200,250 --step-seconds 20

``--conditions N --sampling active|balanced`` runs the observers on a campaign of one scene
with N images instead of the example campaign (``--no-crash``: the curve only), to compare
the latency of active sampling with the balanced design's; the share of normal trials that
came from planned batches is reported.

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np

PASSWORD = "load-test-pw"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- the server -------------------------------------------------------------------------


@dataclass
class Server:
    home: Path
    port: int
    db: str | None
    workers: int
    threads: int
    log: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start ``jod serve`` in its own process group; seconds until it answers."""
        cmd = [sys.executable, "-m", "jodkit", "serve", "--home", str(self.home)]
        cmd += ["--port", str(self.port), "--workers", str(self.workers)]
        cmd += ["--threads", str(self.threads)] + (["--db", self.db] if self.db else [])
        t0 = time.monotonic()
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=out, start_new_session=True)
        if self.log:
            out.close()  # the server holds its own descriptor
        import requests

        for _ in range(1200):  # the first start renders the example campaign
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/auth/login", timeout=1).ok:
                    return time.monotonic() - t0
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        """SIGKILL every process of the server (gunicorn's master and its workers)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU of every live process in the server's process group."""
        return cpu_seconds(lambda _name, pgrp: pgrp == self.proc.pid)


def cpu_seconds(match) -> float:
    """User + system CPU seconds of the live processes for which ``match(name, pgrp)``."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()  # state, ppid, pgrp, ...
        if match(name, int(fields[2])):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def postgres_seconds() -> float:
    """CPU of every PostgreSQL process on the machine (other users' queries included)."""
    return cpu_seconds(lambda name, _pgrp: name.startswith("postgres"))


@dataclass(frozen=True)
class Target:
    """The campaign the observers judge, and the attribute."""

    id: int
    name: str
    attribute: str


def setup(home: Path, db: str | None, n: int, conditions: int | None, sampling: str) -> Target:
    """Observer accounts lt0..lt{n-1}, assigned to the campaign, through the app's code: the
    example campaign, or with ``conditions`` a campaign of one scene with that many images."""
    from PIL import Image as PILImage
    from sqlalchemy import select

    from annotation_app.accounts import add_user, assign
    from annotation_app.campaigns import create_campaign
    from annotation_app.db import get_db
    from annotation_app.models import Campaign

    app = _app(home, db)
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
            campaign = create_campaign(get_db(), spec, Path(app.config["IMAGE_STORE"])).campaign
        else:
            campaign = get_db().scalar(select(Campaign).order_by(Campaign.id).limit(1))
        target = Target(campaign.id, campaign.name, "detail")
        for i in range(n):
            add_user(get_db(), f"lt{i}", PASSWORD, "observer")
            assign(get_db(), f"lt{i}", target.name)
    app.extensions["jodkit_db"].kw["bind"].dispose()
    return target


def _app(home: Path, db: str | None):
    from annotation_app import create_app, default_config

    config = default_config(home) | ({"DATABASE_URL": db} if db else {})
    return create_app(config | {"ACTIVE_BACKGROUND": False})


def planned_share(home: Path, db: str | None, target: Target) -> tuple[int, int]:
    """Pairs of active-sampling batches handed out, and normal trials, in the campaign."""
    from sqlalchemy import func, select

    from annotation_app.db import get_db
    from annotation_app.models import ActivePair, Trial

    app = _app(home, db)
    with app.app_context():
        taken = get_db().scalar(
            select(func.count()).where(
                ActivePair.campaign_id == target.id, ActivePair.session_id.is_not(None)
            )
        )
        normal = get_db().scalar(
            select(func.count()).where(Trial.campaign_id == target.id, Trial.kind == "normal")
        )
    app.extensions["jodkit_db"].kw["bind"].dispose()
    return taken, normal


# ---- one simulated observer -------------------------------------------------------------


@dataclass
class Record:
    """What the observers measured and what the server acknowledged."""

    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    acked: list[tuple[int, str, str]] = field(default_factory=list)
    """(trial id, token, "stored" or "duplicate") for every 200 answer."""
    judgments: int = 0


class Observer:
    """A logged-in observer with its own cookies and connection, and an outbox."""

    def __init__(self, base: str, name: str, target: Target) -> None:
        self.base, self.name, self.target = base, name, target
        self.http: aiohttp.ClientSession | None = None
        self.csrf = ""
        self.sid: str | None = None
        self.trial: int | None = None
        self.outbox: tuple[int, dict] | None = None

    async def login(self) -> None:
        if self.http is not None:
            await self.http.close()
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies from 127.0.0.1
            timeout=aiohttp.ClientTimeout(total=30),
        )
        for attempt in range(200):
            async with self.http.get(f"{self.base}/auth/login") as r:
                token = _csrf(await r.text())
            form = {"username": self.name, "password": PASSWORD, "csrf_token": token}
            async with self.http.post(
                f"{self.base}/auth/login", data=form, allow_redirects=False
            ) as r:
                if r.status == 302:
                    break
                if r.status != 429:  # the global login limit: wait and retry
                    raise RuntimeError(f"login of {self.name}: HTTP {r.status}")
            await asyncio.sleep(0.2 + 0.05 * attempt)
        async with self.http.get(f"{self.base}/") as r:
            self.csrf = _csrf(await r.text())
        await self.start_sitting()

    async def start_sitting(self) -> None:
        url = f"{self.base}/campaigns/{self.target.id}/per_scene/{self.target.attribute}"
        async with self.http.post(
            url, headers={"X-CSRFToken": self.csrf}, allow_redirects=False
        ) as r:
            if r.status != 302:
                raise RuntimeError(f"sitting of {self.name}: HTTP {r.status}")
            self.sid = r.headers["Location"].rsplit("/", 1)[1]
        self.trial = None

    async def send(self, record: Record, timed: bool) -> bool:
        """Send the outbox; True when acknowledged (it is then emptied, and the pair that
        came with the acknowledgment is the next to judge)."""
        trial_id, body = self.outbox
        t0 = time.perf_counter()
        async with self.http.post(
            f"{self.base}/api/trials/{trial_id}/answer",
            json=body,
            headers={"X-CSRFToken": self.csrf},
        ) as r:
            reply = await r.json() if r.status in (200, 400, 404, 409) else {}
        if timed:
            record.submit_ms.append(1000 * (time.perf_counter() - t0))
        if r.status == 200:
            record.acked.append((trial_id, body["token"], reply["status"]))
            self.outbox = None
            self.trial = reply["trials"][0]["id"] if reply["trials"] else None
            return True
        self.trial = None
        if r.status in (400, 404, 409):
            record.errors[f"answer {r.status}: {reply.get('error')}"] += 1
            self.outbox = None  # refused for good: the page drops it too
            return False
        record.errors[f"answer HTTP {r.status}"] += 1
        return False

    async def fetch_next(self, record: Record) -> None:
        """GET the next pair, as the page does when it opens (or is reloaded)."""
        t0 = time.perf_counter()
        async with self.http.get(f"{self.base}/api/sessions/{self.sid}/next") as r:
            body = await r.json() if r.status == 200 else None
        record.next_ms.append(1000 * (time.perf_counter() - t0))
        if body is None:
            record.errors[f"next HTTP {r.status}"] += 1
            return
        if body["trials"]:
            self.trial = body["trials"][0]["id"]
        else:
            await self.start_sitting()  # finished (or on a break): the next sitting

    async def judge(self, record: Record, reload_rate: float) -> None:
        """One judgment, as the browser makes it: the answer's response brings the next
        pair; the page asks for one only when it opens (``reload_rate`` of judgments)."""
        if self.outbox is not None:
            await self.send(record, timed=False)
            return
        if self.trial is None or random.random() < reload_rate:
            await self.fetch_next(record)
            if self.trial is None:
                return
        answer = {
            "token": uuid.uuid4().hex,
            "choice": random.choice(("left", "right")),
            "rt_ms": random.randint(400, 4000),
        }
        self.outbox = (self.trial, answer)
        if await self.send(record, timed=True):
            record.judgments += 1


def _csrf(page: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


async def drive(
    observers: list[Observer], rate: float, seconds: float, reload_rate: float
) -> Record:
    """Every observer judges with exponential pauses (mean n/rate) for ``seconds``."""
    record = Record()
    end = time.monotonic() + seconds
    mean_pause = len(observers) / rate

    async def run(obs: Observer) -> None:
        await asyncio.sleep(random.expovariate(1 / mean_pause))
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                await obs.judge(record, reload_rate)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as err:
                record.errors[type(err).__name__] += 1
                await asyncio.sleep(0.5)
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError, RuntimeError):
                    await obs.login()  # the outbox survives and is resent
            pause = random.expovariate(1 / mean_pause) - (time.monotonic() - started)
            await asyncio.sleep(max(0.0, pause))

    await asyncio.gather(*(run(obs) for obs in observers))
    return record


# ---- the curve --------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def curve(args, server: Server, observers: list[Observer]) -> None:
    print(
        "offered/s  achieved/s  next p50/p99 ms   answer+next p50/p99 ms  errors  "
        "server CPU ms/judgment  client CPU ms/j  postgres CPU ms/j"
    )
    for rate in args.rates:
        cpu0, pg0, me0 = server.cpu_seconds(), postgres_seconds(), time.process_time()
        t0 = time.monotonic()
        record = await drive(observers, rate, args.step_seconds, args.reload_rate)
        elapsed = time.monotonic() - t0
        n = max(record.judgments, 1)
        server_ms = 1000 * (server.cpu_seconds() - cpu0) / n
        client_ms = 1000 * (time.process_time() - me0) / n
        pg_ms = 1000 * (postgres_seconds() - pg0) / n
        print(
            f"{rate:9.0f}  {record.judgments / elapsed:10.1f}  "
            f"{pct(record.next_ms, 50):7.1f} / {pct(record.next_ms, 99):7.1f}   "
            f"{pct(record.submit_ms, 50):11.1f} / {pct(record.submit_ms, 99):7.1f}   "
            f"{sum(record.errors.values()):6d}  {server_ms:22.2f}  {client_ms:15.2f}  "
            f"{pg_ms if args.db else float('nan'):17.2f}",
            flush=True,
        )
        for error, count in record.errors.most_common(3):
            print(f"           {count} x {error}")


# ---- the crash test ---------------------------------------------------------------------


@dataclass
class Verdict:
    acknowledged: int
    stored: int
    exported: int
    lost: int
    twice: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.twice == 0 and self.exported == self.stored


def check_ledger(
    acked: list[tuple[int, str, str]],
    stored: list[tuple[int, str]],
    exported: int,
) -> Verdict:
    """Compare what the observers were told with what the database and the export hold.

    ``acked``: (trial, token, "stored"/"duplicate") per acknowledgment; ``stored``: (trial,
    token) per answered trial row; ``exported``: rows in the exported trial tables.
    Lost: an acknowledged token not stored on its trial. Twice: a token on more than one
    row, a trial on more than one row, a token the server reported "stored" more than
    once, or export rows beyond the stored answers.
    """
    token_of = dict(stored)
    answers = {(trial, token) for trial, token, _ in acked}
    lost = sum(1 for trial, token in answers if token_of.get(trial) != token)
    per_token = Counter(token for _, token in stored)
    per_trial = Counter(trial for trial, _ in stored)
    stored_acks = Counter(token for _, token, status in acked if status == "stored")
    twice = (
        sum(n - 1 for n in per_token.values())
        + sum(n - 1 for n in per_trial.values())
        + sum(n - 1 for n in stored_acks.values())
        + max(0, exported - len(stored))
    )
    distinct = len({token for _, token, _ in acked})
    return Verdict(distinct, len(stored), exported, lost, twice)


def database_rows(home: Path, db: str | None, target: Target) -> tuple[list[tuple[int, str]], int]:
    """(trial, token) of every answered trial, by plain SQL, and the number of rows the
    app's export (``trials_frame``, what ``jod export`` writes) gives."""
    from sqlalchemy import text

    from annotation_app.db import get_db
    from annotation_app.export import trials_frame
    from annotation_app.models import Campaign

    app = _app(home, db)
    with app.app_context():
        session = get_db()
        rows = session.execute(
            text("SELECT id, answer_token FROM trials WHERE answered_at IS NOT NULL")
        ).all()
        campaign = session.get(Campaign, target.id)
        exported = sum(
            len(trials_frame(session, campaign, t)) for t in ("per_scene", "cross_content")
        )
    app.extensions["jodkit_db"].kw["bind"].dispose()
    return [(int(i), t) for i, t in rows], exported


async def crash(args, server: Server, observers: list[Observer], acked_before: list) -> bool:
    loop_task = asyncio.ensure_future(
        drive(observers, args.kill_rate, args.crash_seconds, args.reload_rate)
    )
    await asyncio.sleep(args.kill_after)
    server.kill()
    restart_s = await asyncio.to_thread(server.start)
    record = await loop_task
    pending = [obs for obs in observers if obs.outbox is not None]
    for obs in pending:  # what was still unacknowledged at the end: sent until it is
        for _ in range(20):
            try:
                if await obs.send(record, timed=False) or obs.outbox is None:
                    break
            except (aiohttp.ClientError, TimeoutError, OSError):
                await asyncio.sleep(0.5)
    stored, exported = await asyncio.to_thread(
        database_rows, server.home, args.db, observers[0].target
    )
    verdict = check_ledger(acked_before + record.acked, stored, exported)
    resent = sum(1 for *_, status in record.acked if status == "duplicate")
    print(
        f"crash test: SIGKILL of the whole server at +{args.kill_after:.0f} s of "
        f"{args.crash_seconds:.0f} s at {args.kill_rate:.0f} judgments/s offered, restart "
        f"{restart_s:.1f} s; {verdict.acknowledged} answers acknowledged in all, "
        f"{verdict.stored} stored, {verdict.exported} exported; {verdict.lost} acknowledged "
        f"but lost, {verdict.twice} stored twice; {resent} resent answers recognised as "
        f"duplicates; {sum(record.errors.values())} failed requests during the outage"
    )
    return verdict.ok


async def main_async(args) -> int:
    home = Path(tempfile.mkdtemp(prefix="jod-load-"))
    server = Server(home, free_port(), args.db, args.workers, args.threads, args.server_log)
    server.start()
    target = setup(home, args.db, args.observers, args.conditions, args.sampling)
    base = f"http://127.0.0.1:{server.port}"
    observers = [Observer(base, f"lt{i}", target) for i in range(args.observers)]
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(obs.login() for obs in observers))
    except BaseException:
        server.kill()
        raise
    backend = "PostgreSQL" if args.db else "SQLite (synchronous=FULL)"
    print(
        f"{backend}; jod serve --workers {args.workers} --threads {args.threads}; "
        f"{args.observers} observers in one asyncio process; logins took "
        f"{time.monotonic() - t0:.1f} s; {args.step_seconds:.0f} s per rate; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ok = True
    try:
        if args.rates:
            await curve(args, server, observers)
        if args.sampling == "active":
            taken, normal = planned_share(home, args.db, target)
            print(f"active sampling: {taken} of {normal} normal trials came from planned batches")
        if args.kill_rate and not args.no_crash:
            ok = await crash(args, server, observers, [])
    finally:
        for obs in observers:
            if obs.http is not None:
                await obs.http.close()
        server.kill()
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--observers", type=int, default=50)
    parser.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",") if x],
        default=[25, 50, 100, 150, 200],
        help="offered judgments/s, comma-separated ('' for none)",
    )
    parser.add_argument("--step-seconds", type=float, default=20)
    parser.add_argument(
        "--reload-rate", type=float, default=0.1, help="judgments preceded by a page (re)load"
    )
    parser.add_argument("--kill-rate", type=float, default=50, help="0: no crash test")
    parser.add_argument("--crash-seconds", type=float, default=30)
    parser.add_argument("--kill-after", type=float, default=10)
    parser.add_argument(
        "--conditions", type=int, default=None, help="one scene with this many images"
    )
    parser.add_argument("--sampling", choices=("balanced", "active"), default="balanced")
    parser.add_argument("--no-crash", action="store_true", help="skip the crash test")
    parser.add_argument(
        "--server-log", type=Path, help="append the server's output to this file (errors)"
    )
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
