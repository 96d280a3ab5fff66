"""Campaign specs: clear errors naming the bad key, nothing stored on error, frozen hash."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select
from typer.testing import CliRunner

from annotation_app.campaigns import create_campaign
from annotation_app.db import get_db
from annotation_app.models import Campaign, Image
from annotation_app.spec import parse_spec
from jodkit.cli import app as jod
from scaling.errors import InputError
from tests.app.conftest import PASSWORD, Browser


def counts(app) -> tuple[int, int]:
    with app.app_context():
        db = get_db()
        return db.scalar(select(func.count(Campaign.id))), db.scalar(select(func.count(Image.id)))


def test_create_stores_images_with_sha256(app, make_spec, tmp_path):
    with app.app_context():
        result = create_campaign(get_db(), make_spec(), tmp_path / "store")
        camp = result.campaign
        assert result.created and len(camp.images) == 12 and result.warnings == []
        s1 = [im for im in camp.images if im.scene == "s1"]
        assert [im.condition for im in s1] == ["c0", "c1", "c2", "c3"]
        assert all(im.roi == [8, 8, 32, 32] for im in s1)
        stored = tmp_path / "store" / s1[0].filename
        assert stored.exists() and s1[0].filename.startswith(s1[0].sha256)


def test_same_spec_is_noop_changed_spec_refused(app, make_spec, tmp_path):
    spec = make_spec()
    with app.app_context():
        create_campaign(get_db(), spec, tmp_path / "store")
        assert create_campaign(get_db(), spec, tmp_path / "store").created is False
        changed = make_spec(length=99)
        with pytest.raises(InputError, match="frozen"):
            create_campaign(get_db(), changed, tmp_path / "store")
    assert counts(app) == (1, 12)


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (("seed: 3", "seed: 3\ncolour: red"), "colour", "Extra inputs"),
        (("images: s2", "images: 7"), "scenes[1].images", ""),
        (("images: s2", "images: nowhere"), "scenes[1].images", "folder not found"),
        (("better: c0", "better: c9"), "golden.pairs[0].better", "unknown condition"),
        (("{per_pair: 2}", "{per_pair: 2, per_image: 3}"), "comparisons", "exactly one"),
        (("rate: 0.0", "rate: 0.9"), "golden.rate", "less than or equal"),
        (("roi: [8, 8, 32, 32]", "roi: [40, 8, 32, 32]"), None, "outside image"),
    ],
)
def test_bad_spec_names_the_key_and_stores_nothing(app, make_spec, tmp_path, edit, field, message):
    spec = make_spec()
    spec.write_text(spec.read_text().replace(*edit, 1))
    with app.app_context(), pytest.raises(InputError) as err:
        create_campaign(get_db(), spec, tmp_path / "store")
    assert err.value.field == field
    assert message in str(err.value)
    assert counts(app) == (0, 0)


def test_not_yaml_and_not_mapping():
    with pytest.raises(InputError, match="not valid YAML"):
        parse_spec("a: [1, 2")
    with pytest.raises(InputError, match="mapping"):
        parse_spec("- 1\n- 2")


def test_cli_create_export_and_bad_spec(make_spec, tmp_path):
    """The CLI runs on SQLite in its --home folder."""
    runner = CliRunner()
    home = tmp_path / "home"
    created = runner.invoke(jod, ["campaign", "create", str(make_spec()), "--home", str(home)])
    assert created.exit_code == 0, created.output
    assert "campaign 'test' created: 12 images" in created.output
    bad = make_spec(name="other", tie="maybe")
    refused = runner.invoke(jod, ["campaign", "create", str(bad), "--home", str(home)])
    assert refused.exit_code == 2
    assert "tie_allowed" in refused.output
    exported = runner.invoke(
        jod, ["export", "test", "-o", str(tmp_path / "out"), "--home", str(home)]
    )
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "out" / "trials_per_scene.csv").exists()
    missing = runner.invoke(jod, ["export", "nope", "--home", str(home)])
    assert missing.exit_code == 2 and "no campaign named 'nope'" in missing.output


def test_cli_user_add_and_its_refusals(tmp_path):
    """`jod user add` creates an account; a duplicate, a bad role or a short password exit
    with code 2 and the reason."""
    runner = CliRunner()
    home = ["--home", str(tmp_path / "home")]
    ok = runner.invoke(
        jod,
        ["user", "add", "ana", "--role", "experimenter", *home],
        env={"JODKIT_PASSWORD": "long-enough-1"},
    )
    assert ok.exit_code == 0, ok.output
    assert "user 'ana' (experimenter) created" in ok.output
    for args, password, reason in [
        (["ana"], "long-enough-1", "already exists"),
        (["bob", "--role", "root"], "long-enough-1", "'root' is not one of"),
        (["bob"], "short", "at least 8 characters"),
    ]:
        refused = runner.invoke(
            jod, ["user", "add", *args, *home], env={"JODKIT_PASSWORD": password}
        )
        assert refused.exit_code == 2 and reason in refused.output, refused.output


# ---- every image decoded and checked at creation (issue 13, defect 11) -------------------


def spec_images(make_spec, tmp_path):
    """A valid spec and its image folder (scenes s1, s2, s3 of c0..c3)."""
    spec = make_spec()
    return spec, tmp_path / "campaign" / "images"


def test_a_truncated_image_is_refused_with_its_name(app, make_spec, tmp_path):
    """Before: a truncated PNG was accepted and shown blank."""
    spec, images = spec_images(make_spec, tmp_path)
    data = (images / "s2" / "c1.png").read_bytes()
    (images / "s2" / "c1.png").write_bytes(data[: len(data) // 2])
    with app.app_context(), pytest.raises(InputError, match=r"s2/c1.png: is not a readable image"):
        create_campaign(get_db(), spec, tmp_path / "store")
    (images / "s2" / "c1.png").write_bytes(b"not an image at all")
    with app.app_context(), pytest.raises(InputError, match="not a readable image"):
        create_campaign(get_db(), spec, tmp_path / "store")
    assert counts(app) == (0, 0)


@pytest.mark.parametrize(("dtype", "bits"), [(np.uint8, 8), (np.uint16, 16)])
def test_tiff_is_stored_as_lossless_png_and_the_conversion_recorded(
    app, make_spec, tmp_path, dtype, bits
):
    """Before: a TIFF was accepted and the trial page waited forever."""
    import cv2

    spec, images = spec_images(make_spec, tmp_path)
    top = np.iinfo(dtype).max
    pixels = np.random.default_rng(1).integers(0, top, (48, 64, 3), dtype=dtype)
    (images / "s2" / "c1.png").unlink()
    cv2.imwrite(str(images / "s2" / "c1.tif"), pixels)
    with app.app_context():
        result = create_campaign(get_db(), spec, tmp_path / "store")
        im = next(i for i in result.campaign.images if (i.scene, i.condition) == ("s2", "c1"))
        assert im.filename.endswith(".png") and im.source_path.endswith("c1.tif")
        assert im.conversion.startswith(f"TIFF RGB {bits}-bit -> PNG {bits}-bit")
        assert "lossless" in im.conversion
        stored = cv2.imread(str(tmp_path / "store" / im.filename), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == dtype and np.array_equal(stored, pixels)  # every bit kept
        others = [i for i in result.campaign.images if i.id != im.id]
        assert all(i.conversion is None for i in others)  # PNGs are stored byte for byte


def test_a_float_tiff_is_refused(app, make_spec, tmp_path):
    import cv2

    spec, images = spec_images(make_spec, tmp_path)
    (images / "s3" / "c0.png").unlink()
    cv2.imwrite(
        str(images / "s3" / "c0.tif"), np.random.default_rng(2).random((48, 64)).astype(np.float32)
    )
    with app.app_context(), pytest.raises(InputError, match="cannot be stored as PNG without loss"):
        create_campaign(get_db(), spec, tmp_path / "store")
    assert counts(app) == (0, 0)


def test_warnings_for_mixed_resolutions_identical_files_and_large_images(
    app, make_spec, tmp_path, monkeypatch
):
    """Before: all three passed silently."""
    import annotation_app.campaigns as campaigns

    spec, images = spec_images(make_spec, tmp_path)
    PILImage.new("RGB", (80, 60), "gray").save(images / "s2" / "c3.png")  # s2: two sizes
    shutil.copy(images / "s3" / "c0.png", images / "s3" / "c2.png")  # identical bytes
    monkeypatch.setattr(campaigns, "LARGE_PIXELS", 4000)  # 80x60 counts as large here
    with app.app_context():
        warnings = create_campaign(get_db(), spec, tmp_path / "store").warnings
    text = "\n".join(warnings)
    assert "scene 's2': images at different resolutions (64x48: c0, c1, c2; 80x60: c3)" in text
    assert "byte-identical images: s3/c0, s3/c2" in text
    assert "s2/c3 (c3.png): 80x60 is 0 megapixels: slow to decode" in text
    assert len(warnings) == 3


@pytest.mark.parametrize(
    "entry",
    ["../outside.png", "/etc/passwd", "link-out.png"],
)
def test_paths_outside_image_root_are_refused(app, make_spec, tmp_path, entry):
    spec, images = spec_images(make_spec, tmp_path)
    PILImage.new("RGB", (64, 48)).save(tmp_path / "campaign" / "outside.png")
    (images / "link-out.png").symlink_to(tmp_path / "campaign" / "outside.png")
    text = spec.read_text().replace("    images: s3\n", f"    images: [s3/c0.png, {entry}]\n")
    spec.write_text(text)
    with app.app_context(), pytest.raises(InputError, match="outside image_root"):
        create_campaign(get_db(), spec, tmp_path / "store")
    assert counts(app) == (0, 0)


def test_an_image_changed_on_disk_is_detected(app, make_spec, tmp_path):
    """Before: re-creating kept the stale image and said 'unchanged'."""
    spec, images = spec_images(make_spec, tmp_path)
    with app.app_context():
        create_campaign(get_db(), spec, tmp_path / "store")
        assert create_campaign(get_db(), spec, tmp_path / "store").created is False
        PILImage.new("RGB", (64, 48), "white").save(images / "s1" / "c2.png")
        with pytest.raises(InputError, match=r"c2.png \(s1/c2\) changed on disk"):
            create_campaign(get_db(), spec, tmp_path / "store")


def test_cli_prints_conversions_and_warnings(make_spec, tmp_path):
    import cv2

    spec, images = spec_images(make_spec, tmp_path)
    (images / "s2" / "c1.png").unlink()
    cv2.imwrite(str(images / "s2" / "c1.tif"), np.zeros((48, 64), np.uint16) + 1000)
    shutil.copy(images / "s3" / "c0.png", images / "s3" / "c2.png")
    result = CliRunner().invoke(
        jod, ["campaign", "create", str(spec), "--home", str(tmp_path / "h")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "converted s2/c1: TIFF I;16 16-bit -> PNG 16-bit, 1 channel(s), lossless" in result.output
    )
    assert "warning: byte-identical images: s3/c0, s3/c2" in result.output


def test_cli_runs_campaigns_and_accounts(app, db_url, make_spec, tmp_path):
    """campaign list/pause/resume/close/archive/delete and user list/disable/passwd/assign
    on the app's database; a campaign with answers cannot be deleted, and stays exportable
    once archived."""
    runner = CliRunner()
    where = ["--home", str(tmp_path / "h"), "--db", db_url]

    def jodc(*args: str, password: str | None = None):
        env = {"JODKIT_PASSWORD": password} if password else None
        result = runner.invoke(jod, [*args, *where], env=env)
        return result.exit_code, result.output

    def table(command: str) -> dict[str, list[str]]:
        code, out = jodc(command, "list")
        assert code == 0, out
        return {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}

    assert jodc("campaign", "create", str(make_spec()))[0] == 0
    assert jodc("user", "add", "ana", password=PASSWORD)[0] == 0
    assert jodc("user", "assign", "ana", "test") == (
        0,
        "user 'ana' assigned to campaign 'test'\n",
    )
    assert "(already so)" in jodc("user", "assign", "ana", "test")[1]
    assert table("user")["ana"] == ["observer", "active", "test"]
    assert table("campaign")["test"] == ["active", "12", "1", "0"]

    ana = Browser(app, "ana")  # logs in with the password set by the CLI
    sid = ana.start(1)
    trial = ana.next(sid)["trials"][0]["id"]
    assert ana.answer(trial).status_code == 200
    assert table("campaign")["test"] == ["active", "12", "1", "1"]

    code, out = jodc("campaign", "delete", "test")
    assert code == 2 and "has 1 answers: it cannot be deleted; archive it instead" in out
    for action, status in (("pause", "paused"), ("resume", "active"), ("close", "closed")):
        assert jodc("campaign", action, "test") == (0, f"campaign 'test' is now {status}\n")
    code, out = jodc("campaign", "pause", "test")
    assert code == 2 and "is closed: cannot pause it" in out and "Traceback" not in out
    assert jodc("campaign", "archive", "test")[0] == 0
    assert table("campaign")["test"][0] == "archived"
    out_dir = tmp_path / "out"
    assert jodc("export", "test", "-o", str(out_dir))[0] == 0
    rows = (out_dir / "trials_per_scene.csv").read_text().splitlines()
    assert len(rows) == 2  # the header and the one answer

    assert jodc("user", "disable", "ana")[0] == 0
    assert table("user")["ana"][:2] == ["observer", "disabled"]
    assert ana.client.get(f"/api/sessions/{sid}/next").status_code == 401  # session ended
    assert jodc("user", "disable", "ana", "--enable")[0] == 0
    assert jodc("user", "passwd", "ana", password="another-pw-2")[0] == 0
    with pytest.raises(AssertionError):
        Browser(app, "ana")  # the old password no longer logs in
    assert jodc("user", "assign", "ana", "test", "--remove")[0] == 0
    assert table("user")["ana"] == ["observer", "active"]
    for bad in (("user", "passwd", "nobody"), ("user", "assign", "ana", "nothing")):
        code, out = jodc(*bad, password="another-pw-2")
        assert code == 2 and "no " in out and "Traceback" not in out

    assert jodc("campaign", "create", str(make_spec(name="empty")))[0] == 0
    assert jodc("campaign", "delete", "empty") == (0, "campaign 'empty' deleted\n")
    assert "empty" not in table("campaign")


def test_a_campaign_without_answers_is_deleted_whole(app, campaign, login):
    """Served trials, sittings, pair counts, assignments and an active-sampling plan all
    go; a trial served before the deletion can no longer be answered."""
    from annotation_app.campaigns import delete_campaign
    from annotation_app.models import (
        ActiveGroup,
        ActivePair,
        Assignment,
        ObserverSession,
        PairCount,
        Trial,
    )

    cid = campaign(extra="sampling: active\nactive: {target_width: 0.4}")
    app.extensions["jodkit_active"].background = False
    app.extensions["jodkit_active"].refresh(cid)
    obs = login("obs1")
    trial = obs.next(obs.start(cid))["trials"][0]["id"]
    tables = (Trial, ObserverSession, PairCount, Assignment, Image, ActiveGroup, ActivePair)
    with app.app_context():
        db = get_db()
        assert all(db.scalar(select(func.count()).select_from(t)) for t in tables)
        delete_campaign(db, "test")
        assert [db.scalar(select(func.count()).select_from(t)) for t in tables] == [0] * 7
        assert db.scalar(select(func.count(Campaign.id))) == 0
    assert obs.answer(trial).status_code == 404


@pytest.mark.postgres
def test_an_answer_committed_during_a_deletion_is_kept(app, db_url, campaign, login):
    """The deletion waits on a trial row an answer holds; once that answer commits, the
    campaign is refused deletion instead of the answer being deleted with it."""
    import threading

    from annotation_app.campaigns import delete_campaign
    from annotation_app.models import Trial, utcnow

    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises every writer: no transaction runs beside another")
    cid = campaign()
    obs = login("obs1")
    trial_id = obs.next(obs.start(cid))["trials"][0]["id"]
    outcome: list[BaseException | None] = []

    def delete() -> None:
        with app.app_context():
            try:
                delete_campaign(get_db(), "test")
                outcome.append(None)
            except InputError as err:
                outcome.append(err)

    with app.app_context():
        answering = get_db()  # an answer in flight: its trial row locked and written
        trial = answering.get(Trial, trial_id)
        trial.answer_token, trial.is_a_selected, trial.answered_at = "t" * 32, True, utcnow()
        answering.flush()
        deleting = threading.Thread(target=delete)
        deleting.start()
        deleting.join(1.0)
        assert deleting.is_alive()  # waiting on the answer's row
        answering.commit()
    deleting.join(10)
    assert len(outcome) == 1 and "has 1 answers: it cannot be deleted" in str(outcome[0])
    with app.app_context():
        assert get_db().get(Trial, trial_id).answer_token == "t" * 32
