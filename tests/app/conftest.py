"""Fixtures: the app built from its factory on a throw-away SQLite or PostgreSQL database."""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from annotation_app import create_app
from annotation_app.accounts import add_user, assign
from annotation_app.campaigns import create_campaign
from annotation_app.db import get_db
from annotation_app.models import Base

PASSWORD = "correct-horse-1"


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> str:
    """A uniquely named database per test session and xdist worker, dropped afterwards."""
    admin_url = os.environ.get("JODKIT_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI") == "true":
            pytest.fail("JODKIT_TEST_POSTGRES_URL must be set in CI")
        pytest.skip("JODKIT_TEST_POSTGRES_URL not set")
    name = f"jodkit_app_{worker_id}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every app test runs on both databases; PostgreSQL tables are emptied per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = [t.name for t in Base.metadata.sorted_tables]
        exists = conn.execute(text("SELECT to_regclass('users')")).scalar()
        if exists:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return url


def write_images(folder: Path, scene: str, n: int, seed: int = 0) -> None:
    """n small PNGs of one scene, noisier as the index grows."""
    rng = np.random.default_rng(seed)
    base = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (48, 1))
    (folder / scene).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        noisy = np.clip(base + rng.normal(0, 12 * i + 1, base.shape), 0, 255).astype(np.uint8)
        PILImage.fromarray(np.stack([noisy] * 3, -1)).save(folder / scene / f"c{i}.png")


SPEC = """\
name: {name}
seed: 3
image_root: images
scenes:
  - name: s1
    images: s1
    roi: [8, 8, 32, 32]
  - name: s2
    images: s2
  - name: s3
    images: s3
attributes:
  - name: noise
    question: Which image is less noisy?
    instructions: Look at flat areas.
sessions: [per_scene, cross_content]
comparisons: {{per_pair: 2}}
tie_allowed: {tie}
golden:
  rate: {gold}
  pairs: [{{scene: s1, better: c0, worse: c3}}]
repeat_rate: {repeat}
training_trials: {training}
max_per_observer: 1
session: {{length: {length}, break_after_minutes: {break_after}, break_minutes: 1}}
display: {{size: 96}}
cross_content: {{images_per_scene: 2}}
{extra}
"""


@pytest.fixture
def make_spec(tmp_path: Path):
    """Write images and a spec; keyword arguments change the spec's settings."""
    images = tmp_path / "campaign" / "images"
    for k, scene in enumerate(("s1", "s2", "s3")):
        write_images(images, scene, 4, seed=k)

    def make(**overrides) -> Path:
        values = {"name": "test", "tie": "true", "gold": 0.0, "repeat": 0.0, "training": 0}
        values |= {"length": 12, "break_after": 30, "extra": ""}
        values |= overrides
        path = tmp_path / "campaign" / f"{values['name']}.yaml"
        path.write_text(SPEC.format(**values))
        return path

    return make


@pytest.fixture
def app(db_url: str, tmp_path: Path):
    """The app from its factory, with a throw-away DB and image store."""
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "DATABASE_URL": db_url,
            "IMAGE_STORE": str(tmp_path / "store"),
            "CACHE_DIR": str(tmp_path / "cache"),
            # Tests log in many users from one address; tests of the limits set their own.
            "LOGIN_RATE_LIMIT": "10000 per minute",
            "LOGIN_GLOBAL_RATE_LIMIT": "10000 per second",
        }
    )
    yield app
    app.extensions["jodkit_db"].kw["bind"].dispose()


@pytest.fixture
def campaign(app, make_spec, tmp_path: Path):
    """A stored campaign plus users of every role; returns a dict of handy values."""

    def build(**overrides):
        with app.app_context():
            db = get_db()
            camp = create_campaign(db, make_spec(**overrides), tmp_path / "store").campaign
            for name, role in (("obs1", "observer"), ("obs2", "observer"), ("exp", "experimenter")):
                add_user(db, name, PASSWORD, role)
                assign(db, name, camp.name)
            return camp.id

    return build


class Browser:
    """A test client logged in as one user, sending the CSRF token like the page does."""

    def __init__(self, app, username: str) -> None:
        self.client = app.test_client()
        page = self.client.get("/auth/login").get_data(as_text=True)
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        response = self.client.post(
            "/auth/login",
            data={"username": username, "password": PASSWORD, "csrf_token": self.token},
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        # The login starts a new session cookie, and with it a new CSRF token.
        page = self.client.get("/").get_data(as_text=True)
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def post(self, url: str, **kwargs):
        return self.client.post(url, headers={"X-CSRFToken": self.token}, **kwargs)

    def start(self, campaign_id: int, session_type: str = "per_scene") -> int:
        response = self.post(f"/campaigns/{campaign_id}/{session_type}/noise")
        assert response.status_code == 302
        return int(response.location.rsplit("/", 1)[1])

    def next(self, session_id: int) -> dict:
        response = self.client.get(f"/api/sessions/{session_id}/next")
        assert response.status_code == 200
        return response.get_json()

    def answer(self, trial_id: int, choice: str = "left", token: str | None = None, **extra):
        body = {"token": token or uuid.uuid4().hex, "choice": choice, "rt_ms": 800} | extra
        return self.post(f"/api/trials/{trial_id}/answer", json=body)


def add_observer(app, name: str, campaign_id: int | None = None) -> None:
    """One more observer account, assigned to the campaign when given."""
    from annotation_app.models import Campaign

    with app.app_context():
        db = get_db()
        add_user(db, name, PASSWORD, "observer")
        if campaign_id is not None:
            assign(db, name, db.get(Campaign, campaign_id).name)


def sides(app, trial_id: int) -> tuple[int, int]:
    """(left image id, right image id) of a trial, read from the database: the API never
    tells the page which image is which."""
    from annotation_app.models import Trial

    with app.app_context():
        t = get_db().get(Trial, trial_id)
        a_left = t.left_shown == "A"
        return (t.image_a_id, t.image_b_id) if a_left else (t.image_b_id, t.image_a_id)


@pytest.fixture
def login(app):
    """login("obs1") -> Browser."""
    return lambda username: Browser(app, username)


@pytest.fixture
def run_session():
    """run_session(browser, campaign_id, type, choice): answer until the session ends."""

    def run_session(obs, cid: int, session_type: str = "per_scene", choice: str = "left") -> int:
        sid = obs.start(cid, session_type)
        while trials := obs.next(sid)["trials"]:
            assert obs.answer(trials[0]["id"], choice).status_code == 200
        return sid

    return run_session


# ---- real Chromium (Playwright) --------------------------------------------------------

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def live(app):
    """The app served on a free port picked at run time."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def chromium():
    """Chromium from /usr/bin, driven by Playwright."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("no /usr/bin/chromium")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(chromium, width: int = 1400, height: int = 860, dpr: float = 1):
    """A page of that size; ``page.problems`` collects console errors (a CSP violation
    included) and uncaught exceptions."""
    page = chromium.new_page(viewport={"width": width, "height": height}, device_scale_factor=dpr)
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    return page


@pytest.fixture
def page(chromium):
    return new_page(chromium)


def shot(page, tmp_path: Path, name: str, db_url: str, **kwargs) -> Path:
    """Screenshot into tmp_path; SQLite runs also keep it under test-artifacts/ (one copy,
    so that parallel workers never write the same file)."""
    path = tmp_path / name
    page.screenshot(path=str(path), **kwargs)
    if db_url.startswith("sqlite"):
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(path, ARTIFACTS / name)
    return path


def browser_login(page, live: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live}/auth/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login")
