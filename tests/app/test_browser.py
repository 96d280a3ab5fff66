"""End to end in real Chromium, on SQLite and PostgreSQL: log in, read the instructions,
answer, flicker, zoom, reload mid-session and resume, lose the network mid-answer, finish;
screenshots (SQLite runs) saved under test-artifacts/."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from annotation_app.db import get_db
from annotation_app.models import Trial
from tests.app.conftest import Browser, add_observer, browser_login, shot
from tests.app.test_dashboard import answer_truthfully

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def answered(app) -> int:
    with app.app_context():
        return get_db().scalar(select(func.count()).where(Trial.answered_at.is_not(None)))


def test_expert_session_end_to_end(app, db_url, campaign, live, page, tmp_path):
    cid = campaign(length=6)
    browser_login(page, live, "obs1")
    page.click("text=noise · per-scene")
    assert "Look at flat areas." in page.inner_text(".instructions")
    page.click("#start")
    page.wait_for_selector("#trial[data-trial]")
    count = page.locator("#count")
    count.wait_for()
    assert count.inner_text() == "0 / 6"
    shot(page, tmp_path, "trial_page.png", db_url)

    first = page.get_attribute("#trial", "data-trial")
    left_src = page.get_attribute("#panel-left img", "src")
    right_src = page.get_attribute("#panel-right img", "src")
    page.keyboard.press("Space")  # flicker: the two images swap in place
    assert page.get_attribute("#panel-left img", "src") == right_src
    assert page.is_visible("#panel-left .swapped")
    page.keyboard.press("Space")
    assert page.get_attribute("#panel-left img", "src") == left_src
    assert page.inner_text("#zoom-info") == "both: 1:1"  # small images open 1:1
    page.keyboard.press("+")  # zoom: both panels at the same magnification
    widths = [
        page.eval_on_selector(f"#panel-{s} img", "e => e.style.width") for s in ("left", "right")
    ]
    assert widths[0] == widths[1]
    assert page.inner_text("#zoom-info") == "both: ×2 (pixels enlarged)"
    page.keyboard.press("p")  # back to the camera's pixels 1:1
    assert page.inner_text("#zoom-info") == "both: 1:1"
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => document.querySelector('#trial').dataset.trial !== '{first}'")
    assert count.inner_text() == "1 / 6"

    page.wait_for_selector("#trial[data-ready=true]")
    page.click("#choose-right")  # mouse
    page.wait_for_function("() => document.querySelector('#count').textContent === '2 / 6'")
    page.wait_for_selector("#trial[data-ready=true]")
    page.keyboard.press("ArrowDown")  # tie
    page.wait_for_function("() => document.querySelector('#count').textContent === '3 / 6'")

    page.wait_for_selector("#trial[data-ready=true]")
    before = page.get_attribute("#trial", "data-trial")
    page.reload()  # mid-session: the same pair comes back
    page.wait_for_function(f"() => document.querySelector('#trial').dataset.trial === '{before}'")
    assert page.inner_text("#count") == "3 / 6"

    for done in (4, 5, 6):
        page.wait_for_selector("#trial[data-ready=true]")
        page.keyboard.press("2")
        page.wait_for_function(
            f"() => document.querySelector('#count').textContent === '{done} / 6'"
        )
    page.wait_for_selector("#trial[data-finished=true]")
    assert "Session complete" in page.inner_text("#overlay")
    assert answered(app) == 6
    with app.app_context():
        rows = list(get_db().scalars(select(Trial).order_by(Trial.seq)))
        assert [r.tie for r in rows[:3]] == [False, False, True]
        assert rows[0].flicker_count == 2 and rows[0].zoom_count >= 1
        assert all(r.rt_ms and r.rt_ms > 0 for r in rows)

    # A realistic amount of data for the dashboard: three more observers x 30 trials
    # through the API, one of them answering upside down (the outlier score shows it).
    add_observer(app, "obs3", cid)
    for name, flip in (("obs2", False), ("obs3", True), ("exp", False)):
        answer_truthfully(app, Browser(app, name), cid, 30, flip)

    page.context.clear_cookies()  # a second person at another desk
    browser_login(page, live, "exp")
    page.goto(f"{live}/dashboard/{cid}")
    observers = page.inner_text("#observers")
    assert "obs1" in observers and "outlier score" in observers
    assert "nan" not in page.inner_text("#scales").lower()
    page.set_viewport_size({"width": 1400, "height": 1000})
    shot(page, tmp_path, "dashboard.png", db_url, full_page=True)


def test_network_loss_mid_answer(app, db_url, campaign, live, page, tmp_path):
    """Offline when answering: the page says the answer is pending and hides the pair (no
    blind answers), keeps the answer, sends it once when back online and moves on to the
    right pair."""
    campaign(length=4)
    browser_login(page, live, "obs1")
    page.click("text=noise · per-scene")
    page.click("#start")
    page.wait_for_selector("#trial[data-ready=true]")
    first = page.get_attribute("#trial", "data-trial")

    page.context.set_offline(True)
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector("#trial[data-pending=true]")
    assert "Answer pending" in page.inner_text("#overlay")
    assert not page.is_visible("#stage")  # the answered pair is not left on screen
    assert not page.is_visible("#choose-right")
    outbox = page.evaluate(
        "JSON.parse(localStorage.getItem(`jodkit-outbox-${document.getElementById('trial').dataset.session}`))"
    )
    assert outbox["trial"] == int(first) and outbox["answer"]["choice"] == "left"
    shot(page, tmp_path, "offline_pending.png", db_url)
    for key in ("ArrowRight", "2", "ArrowLeft"):  # impatient keys change nothing
        page.keyboard.press(key)
    page.wait_for_timeout(700)  # a retry fails meanwhile
    assert answered(app) == 0
    assert page.get_attribute("#trial", "data-trial") == first
    assert "ready" not in (page.evaluate("Object.keys(document.getElementById('trial').dataset)"))

    page.context.set_offline(False)
    page.wait_for_function(
        "([first]) => { const d = document.getElementById('trial').dataset;"
        " return d.ready === 'true' && d.trial !== first; }",
        arg=[first],
    )
    assert page.inner_text("#count") == "1 / 4"
    assert page.get_attribute("#trial", "data-pending") is None
    assert page.is_visible("#stage") and not page.is_visible("#overlay")
    assert page.evaluate("localStorage.length") == 0
    with app.app_context():
        rows = list(get_db().scalars(select(Trial).order_by(Trial.seq)))
        stored = [r for r in rows if r.answered_at is not None]
        assert [r.id for r in stored] == [int(first)]
        assert stored[0].answer_token == outbox["answer"]["token"]
        chose_left = stored[0].is_a_selected == (stored[0].left_shown == "A")
        assert chose_left and not stored[0].tie
        upcoming = next(r for r in rows if r.answered_at is None)
    assert page.get_attribute("#trial", "data-trial") == str(upcoming.id)

    page.keyboard.press("2")  # and the session carries on normally
    page.wait_for_function("() => document.querySelector('#count').textContent === '2 / 4'")
    assert answered(app) == 2
