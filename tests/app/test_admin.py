"""The admin page over HTTP: admins only, CSRF on every form, campaigns run through their
statuses, accounts disabled and reset, observers assigned, campaign images taken only from
under IMPORT_ROOT. (The same page in Chromium: test_browser_views.py.)"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from annotation_app.accounts import add_user
from annotation_app.db import get_db
from annotation_app.models import Assignment, Campaign, User
from tests.app.conftest import PASSWORD, Browser


@pytest.fixture
def admin(app, campaign):
    """(admin browser, campaign id): the test campaign, obs1/obs2/exp and an admin."""
    cid = campaign()
    with app.app_context():
        add_user(get_db(), "boss", PASSWORD, "admin")
    return Browser(app, "boss"), cid


def flashed(response) -> str:
    """The page after a form's redirect."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return response.location


def body(browser: Browser) -> str:
    return browser.client.get("/admin/").get_data(as_text=True)


def status_of(app, cid: int) -> str | None:
    with app.app_context():
        campaign = get_db().get(Campaign, cid)
        return None if campaign is None else campaign.status


def user_row(app, name: str) -> User:
    with app.app_context():
        return get_db().scalar(select(User).where(User.username == name))


POSTS = [
    "/admin/campaigns",
    "/admin/campaigns/1/pause",
    "/admin/campaigns/1/delete",
    "/admin/users",
    "/admin/users/1/disable",
    "/admin/users/1/password",
    "/admin/users/1/assign",
    "/admin/users/1/unassign/1",
]


@pytest.mark.parametrize("role_user", ["obs1", "exp"])
def test_only_admins_reach_the_page_and_its_forms(app, admin, login, role_user):
    other = login(role_user)
    assert other.client.get("/admin/").status_code == 403
    for url in POSTS:
        assert other.post(url, data={"password": "x" * 12}).status_code == 403, url
    assert status_of(app, admin[1]) == "active"
    assert user_row(app, "obs1").disabled_at is None


def test_every_form_needs_its_csrf_token(app, admin):
    boss, cid = admin
    for url in POSTS:
        assert boss.client.post(url, data={"password": "x" * 12}).status_code == 400, url
    assert status_of(app, cid) == "active"
    assert user_row(app, "obs1").check_password(PASSWORD)
    assert user_row(app, "obs1").disabled_at is None
    with app.app_context():
        assert get_db().scalar(select(User).where(User.username == "")) is None
        assert len(list(get_db().scalars(select(Assignment)))) == 3


def test_campaign_statuses_and_deletion(app, admin, login):
    boss, cid = admin
    for action, status in (("pause", "paused"), ("resume", "active"), ("close", "closed")):
        flashed(boss.post(f"/admin/campaigns/{cid}/{action}", data={"csrf_token": boss.token}))
        assert status_of(app, cid) == status
    flashed(boss.post(f"/admin/campaigns/{cid}/pause", data={"csrf_token": boss.token}))
    assert status_of(app, cid) == "closed" and "cannot pause it" in body(boss)
    flashed(boss.post(f"/admin/campaigns/{cid}/resume", data={"csrf_token": boss.token}))
    obs = login("obs1")
    sid = obs.start(cid)
    assert obs.answer(obs.next(sid)["trials"][0]["id"]).status_code == 200
    page = body(boss)
    assert "(has answers)" in page and 'value="delete"' not in page
    flashed(boss.post(f"/admin/campaigns/{cid}/delete", data={"csrf_token": boss.token}))
    assert status_of(app, cid) == "active" and "has 1 answers: it cannot be deleted" in body(boss)
    flashed(boss.post(f"/admin/campaigns/{cid}/archive", data={"csrf_token": boss.token}))
    assert status_of(app, cid) == "archived"
    csv = boss.client.get(f"/dashboard/{cid}/export/trials_per_scene.csv")
    assert csv.status_code == 200 and len(csv.get_data(as_text=True).splitlines()) == 2
    assert f"/campaigns/{cid}/" not in obs.client.get("/").get_data(as_text=True)
    flashed(boss.post(f"/admin/campaigns/{cid}/explode", data={"csrf_token": boss.token}))
    assert status_of(app, cid) == "archived" and "action must be one of" in body(boss)
    missing = boss.post("/admin/campaigns/999/pause", data={"csrf_token": boss.token})
    assert missing.status_code == 404


def test_an_unanswered_campaign_is_deleted(app, admin):
    boss, cid = admin
    flashed(boss.post(f"/admin/campaigns/{cid}/delete", data={"csrf_token": boss.token}))
    assert status_of(app, cid) is None and "campaign &#39;test&#39; deleted" in body(boss)


def test_accounts_added_disabled_reset_and_assigned(app, admin, login):
    boss, cid = admin
    form = {"csrf_token": boss.token, "username": "newbie", "role": "observer"}
    flashed(boss.post("/admin/users", data=form | {"password": "short"}))
    assert user_row(app, "newbie") is None and "at least 8 characters" in body(boss)
    flashed(boss.post("/admin/users", data=form | {"password": "long-enough-9"}))
    newbie = user_row(app, "newbie")
    assert newbie.role == "observer" and newbie.check_password("long-enough-9")
    flashed(boss.post("/admin/users", data=form | {"password": "long-enough-9"}))
    assert "already exists" in body(boss)

    flashed(
        boss.post(
            f"/admin/users/{newbie.id}/assign", data={"csrf_token": boss.token, "campaign": "test"}
        )
    )
    with app.app_context():
        assert get_db().get(Assignment, (cid, newbie.id)) is not None
    flashed(
        boss.post(
            f"/admin/users/{newbie.id}/assign", data={"csrf_token": boss.token, "campaign": "nope"}
        )
    )
    assert "Not a valid choice" in body(boss)
    flashed(boss.post(f"/admin/users/{newbie.id}/unassign/{cid}", data={"csrf_token": boss.token}))
    with app.app_context():
        assert get_db().get(Assignment, (cid, newbie.id)) is None

    obs = login("obs1")
    obs1 = user_row(app, "obs1")
    flashed(boss.post(f"/admin/users/{obs1.id}/disable", data={"csrf_token": boss.token}))
    assert user_row(app, "obs1").disabled_at is not None
    assert obs.client.get("/").status_code == 302  # its session ended: back to the login
    with pytest.raises(AssertionError):
        login("obs1")  # and it cannot log in again
    flashed(boss.post(f"/admin/users/{obs1.id}/disable", data={"csrf_token": boss.token}))
    assert user_row(app, "obs1").disabled_at is None  # the same button enables it again
    obs = login("obs1")
    reset = {"csrf_token": boss.token, "password": "reset-by-admin-1"}
    flashed(boss.post(f"/admin/users/{obs1.id}/password", data=reset))
    assert user_row(app, "obs1").check_password("reset-by-admin-1")
    assert obs.client.get("/").status_code == 302
    assert boss.post("/admin/users/999/disable", data={"csrf_token": boss.token}).status_code == 404


def test_campaigns_come_only_from_under_the_import_root(app, admin, make_spec, tmp_path):
    boss, _ = admin
    spec = make_spec(name="from-the-page")
    form = {"csrf_token": boss.token, "spec": spec.read_text(), "folder": "."}
    flashed(boss.post("/admin/campaigns", data=form))
    assert "No image folder is configured" in body(boss)
    assert "created" not in body(boss)
    app.config["IMPORT_ROOT"] = str(spec.parent)
    for folder in ("..", "/etc", "images/../.."):
        flashed(boss.post("/admin/campaigns", data=form | {"folder": folder}))
        assert "Not a valid choice" in body(boss), folder
    escape = spec.read_text().replace("image_root: images", "image_root: ../..")
    flashed(boss.post("/admin/campaigns", data=form | {"spec": escape}))
    assert "image_root leads outside the import folder" in body(boss)
    flashed(boss.post("/admin/campaigns", data=form | {"spec": "name: [unclosed\n"}))
    assert "refused: " in body(boss)
    with app.app_context():
        assert [c.name for c in get_db().scalars(select(Campaign))] == ["test"]
    flashed(boss.post("/admin/campaigns", data=form))
    page = body(boss)
    assert "campaign &#39;from-the-page&#39; created: 12 images" in page
    flashed(boss.post("/admin/campaigns", data=form))
    assert "already exists with this spec; unchanged" in body(boss)
