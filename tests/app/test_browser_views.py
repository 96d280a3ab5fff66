"""The new views in real Chromium: the camera's pixels (1:1 when both images fit, one
magnification for both panels, downscaling said out loud), the Enter key after a click, and
the admin page. Screenshots (SQLite runs) go to test-artifacts/."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from annotation_app.accounts import add_user, assign
from annotation_app.campaigns import create_campaign
from annotation_app.db import get_db
from annotation_app.models import Campaign, Trial, User
from tests.app.conftest import PASSWORD, browser_login, new_page, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SPEC = """\
name: pixels
image_root: images
scenes:
  - {name: big, images: big}
  - {name: small, images: small}
attributes:
  - {name: detail, question: "Which image shows more detail?"}
sessions: [per_scene, cross_content]
comparisons: {per_pair: 2}
session: {length: 8}
cross_content: {images_per_scene: 2}
"""


def picture(width: int, height: int, seed: int) -> np.ndarray:
    """A pattern of one-pixel stripes (any resampling would smear it) plus noise."""
    rng = np.random.default_rng(seed)
    stripes = (np.indices((height, width)).sum(axis=0) % 2) * 180 + 30
    noise = rng.integers(0, 40, (height, width))
    return np.stack([np.clip(stripes + noise, 0, 255).astype(np.uint8)] * 3, axis=-1)


@pytest.fixture
def pixel_campaign(app, tmp_path):
    """Scene 'big' at 640x480 and scene 'small' at 400x300; obs1 assigned."""
    for scene, (w, h) in (("big", (640, 480)), ("small", (400, 300))):
        folder = tmp_path / "px" / "images" / scene
        folder.mkdir(parents=True)
        for i in range(3):
            PILImage.fromarray(picture(w, h, 10 * len(scene) + i)).save(folder / f"c{i}.png")
    spec = tmp_path / "px" / "spec.yaml"
    spec.write_text(SPEC)
    with app.app_context():
        db = get_db()
        cid = create_campaign(db, spec, tmp_path / "store").campaign.id
        add_user(db, "obs1", PASSWORD, "observer")
        assign(db, "obs1", "pixels")
    return cid


def start(page, live: str, cid: int, session_type: str) -> None:
    browser_login(page, live, "obs1")
    label = "per-scene" if session_type == "per_scene" else "cross-content"
    page.click(f"text=detail · {label}")
    page.click("#start")
    page.wait_for_selector("#trial[data-ready=true]")


MEASURE = """() => Array.from(document.querySelectorAll('.viewport img'), (img) => {
  const box = img.getBoundingClientRect();
  return {natural: img.naturalWidth, device: box.width * window.devicePixelRatio};
})"""


def magnifications(page) -> list[float]:
    """Device pixels per image pixel, per panel, as the browser lays the images out."""
    return [m["device"] / m["natural"] for m in page.evaluate(MEASURE)]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("width", "height", "dpr"), [(1600, 1000, 1), (1600, 1000, 2)])
def test_a_pair_that_fits_opens_at_one_to_one(
    app, db_url, pixel_campaign, live, chromium, tmp_path, width, height, dpr
):
    """Before: the fit view was always resampled (123% at 1600 px, 160% at DPR 2)."""
    page = new_page(chromium, width, height, dpr)
    start(page, live, pixel_campaign, "per_scene")
    assert magnifications(page) == [1.0, 1.0]  # one image pixel = one device pixel
    assert page.inner_text("#zoom-info") == "both: 1:1"
    assert not page.is_visible("#resample")
    for side in ("left", "right"):
        readout = page.inner_text(f"#readout-{side}")
        assert readout in ("640×480 px at 1:1", "400×300 px at 1:1")
    shot(page, tmp_path, f"pixels_1to1_{width}x{height}_dpr{dpr}.png", db_url)
    page.keyboard.press("+")  # whole multiples above 1:1, drawn as blocks
    assert magnifications(page) == [2.0, 2.0]
    rendering = "e => getComputedStyle(e).imageRendering"
    assert page.eval_on_selector("#panel-left img", rendering) == "pixelated"
    assert page.problems == []  # no CSP violation, no script error


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_too_large_pairs_are_downscaled_together_and_say_so(
    app, db_url, pixel_campaign, live, chromium, tmp_path
):
    """Before: at 1280x720 a 640 px image could not be seen whole at 1:1, and a
    cross-content pair was shown at 98% and 69% with a read-out for the left panel only."""
    page = new_page(chromium, 1280, 720, 1)
    start(page, live, pixel_campaign, "cross_content")
    sizes = sorted(m["natural"] for m in page.evaluate(MEASURE))
    assert sizes == [400, 640]  # a cross-content pair of two resolutions
    left, right = magnifications(page)
    assert left == pytest.approx(right, abs=1e-3)  # one magnification for both panels
    assert left < 1  # 640 px do not fit a 1280 px wide window twice
    assert page.is_visible("#resample")
    percent = f"{left * 100:.1f}%" if left > 0.99 else f"{left * 100:.0f}%"
    assert page.inner_text("#resample").startswith(f"downscaled to {percent}")
    readouts = [page.inner_text(f"#readout-{s}") for s in ("left", "right")]
    assert sorted(readouts) == sorted(
        f"{w}×{h} px at {percent}" for w, h in ((400, 300), (640, 480))
    )
    shot(page, tmp_path, "pixels_downscaled_1280x720.png", db_url)
    page.keyboard.press("p")  # the camera's pixels, both panels
    assert magnifications(page) == [1.0, 1.0]
    assert not page.is_visible("#resample")
    shot(page, tmp_path, "pixels_p_for_1to1_1280x720.png", db_url)
    assert page.problems == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_enter_after_a_click_does_not_answer(app, db_url, pixel_campaign, live, chromium):
    """Before: the clicked button kept the focus and Enter answered the next pair (one
    answer stored at 325 ms)."""
    page = new_page(chromium)
    start(page, live, pixel_campaign, "per_scene")
    page.click("#choose-left")
    page.wait_for_function("() => document.querySelector('#count').textContent === '1 / 8'")
    page.wait_for_selector("#trial[data-ready=true]")
    assert page.evaluate("() => document.activeElement.tagName") != "BUTTON"
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.wait_for_timeout(800)
    assert page.inner_text("#count") == "1 / 8"
    with app.app_context():
        n = get_db().scalar(select(func.count()).where(Trial.answered_at.is_not(None)))
    assert n == 1
    page.keyboard.press("ArrowRight")  # the answer keys still work
    page.wait_for_function("() => document.querySelector('#count').textContent === '2 / 8'")


def test_admin_runs_campaigns_and_accounts_from_the_browser(
    app, db_url, live, chromium, tmp_path, make_spec
):
    spec = make_spec(name="from-the-browser")
    app.config["IMPORT_ROOT"] = str(spec.parent)
    with app.app_context():
        db = get_db()
        add_user(db, "boss", PASSWORD, "admin")
        add_user(db, "exp", PASSWORD, "experimenter")
        add_user(db, "obs1", PASSWORD, "observer")
    page = new_page(chromium, 1400, 1000)
    browser_login(page, live, "exp")
    assert page.goto(f"{live}/admin/").status == 403  # admins only
    page.problems.clear()  # that 403 was asked for
    page.context.clear_cookies()
    browser_login(page, live, "boss")
    page.click("text=Admin")
    page.select_option("#folder", ".")
    page.fill("#spec", spec.read_text().replace("images: s3", "images: s2"))
    page.click("#create")
    flashes = page.inner_text("body")
    assert "campaign 'from-the-browser' created: 12 images" in flashes
    assert "warning: byte-identical images" in flashes  # s2's images listed twice
    page.fill("#username", "newbie")
    page.select_option("#role", "observer")
    page.fill("#password", "long-enough-9")
    page.click("#add")
    assert "user 'newbie' (observer) created" in page.inner_text("body")
    row = page.locator("tr[data-user=newbie]")
    row.locator("select").select_option("from-the-browser")
    row.locator("text=assign").click()
    assert "assigned to 'from-the-browser'" in page.inner_text("body")
    campaign = page.locator("tr[data-campaign=from-the-browser]")
    campaign.locator("button[value=pause]").click()
    assert "is now paused" in page.inner_text("body")
    obs_row = page.locator("tr[data-user=obs1]")
    obs_row.locator("input[type=password]").fill("reset-by-admin-1")
    obs_row.locator("text=reset").click()
    assert "password of 'obs1' reset" in page.inner_text("body")
    page.locator("tr[data-user=obs1]").locator("text=disable").click()
    assert "user 'obs1' disabled" in page.inner_text("body")
    shot(page, tmp_path, "admin.png", db_url, full_page=True)
    with app.app_context():
        db = get_db()
        camp = db.scalar(select(Campaign).where(Campaign.name == "from-the-browser"))
        assert camp.status == "paused"
        obs1 = db.scalar(select(User).where(User.username == "obs1"))
        assert obs1.disabled_at is not None and obs1.check_password("reset-by-admin-1")
    # a refused spec says why, and stores nothing
    page.fill("#spec", "name: broken\nscenes: []\n")
    page.click("#create")
    assert "refused:" in page.inner_text("body")
    # the new observer sees the paused campaign, without pairs
    page.context.clear_cookies()
    browser_login(page, live, "newbie", "long-enough-9")
    assert "This campaign is paused" in page.inner_text("body")
    assert page.problems == []
