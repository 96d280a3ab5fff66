"""Campaign specs: clear errors naming the bad key, nothing stored on error, frozen hash."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from annotation_app.campaigns import create_campaign
from annotation_app.db import get_db
from annotation_app.models import Campaign, Image
from annotation_app.spec import parse_spec
from jodkit.cli import app as jod
from scaling.errors import InputError


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
