"""The annotation app's commands on bad input: one line naming the file, exit code 2,
nothing stored and no database made for a mistyped --home."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jodkit.cli import app as jod

runner = CliRunner()


def _jod(*args: str):
    return runner.invoke(jod, list(args), env={"JODKIT_PASSWORD": "long-enough-1"})


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def _listed(home) -> str:
    result = _jod("campaign", "list", "--home", str(home))
    assert result.exit_code == 0, result.output
    return result.output


def test_campaign_create_refuses_unreadable_specs(make_spec, home, tmp_path):
    spec = make_spec()
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "latin.yaml").write_bytes(spec.read_bytes() + b"# caf\xe9\n")
    (tmp_path / "broken.yaml").write_text("name: [1, 2\n")
    (tmp_path / "typo.yaml").write_text(spec.read_text().replace("seed:", "sede:"))
    latin = (tmp_path / "latin.yaml").read_bytes()
    last_line = latin.count(b"\n", 0, latin.index(b"\xe9")) + 1
    cases = {
        tmp_path / "absent.yaml": "file not found",
        tmp_path / "folder.yaml": "is a folder, where a file is expected",
        tmp_path / "latin.yaml": f"is not UTF-8 text (byte 0xe9 on line {last_line}): save "
        "the file as UTF-8",
        tmp_path / "broken.yaml": "is not valid YAML at line 2, column 1: expected ',' or ']', "
        "but got '<stream end>' (while parsing a flow sequence)",
        tmp_path / "typo.yaml": "field 'sede': Extra inputs are not permitted (a misspelt "
        "setting?)",
    }
    for path, message in cases.items():
        result = _jod("campaign", "create", str(path), "--home", str(home))
        sep = ", " if message.startswith("field") else ": "
        assert result.exit_code == 2, result.output
        assert result.output == f"error: {path}{sep}{message}\n"
    assert "test" not in _listed(home)


def test_campaign_create_refuses_a_truncated_image(make_spec, home, tmp_path):
    spec = make_spec()
    image = tmp_path / "campaign" / "images" / "s2" / "c1.png"
    image.write_bytes(image.read_bytes()[:-200])
    result = _jod("campaign", "create", str(spec), "--home", str(home))
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {image}: is not a readable image (")
    assert len(result.output.splitlines()) == 1
    assert "test" not in _listed(home)


def test_a_mistyped_home_is_refused_and_left_uncreated(make_spec, home, tmp_path):
    assert _jod("campaign", "create", str(make_spec()), "--home", str(home)).exit_code == 0
    typo = tmp_path / "hoem"
    for args in (["export", "test"], ["campaign", "list"], ["user", "list"]):
        result = _jod(*args, "--home", str(typo))
        assert result.exit_code == 2
        assert result.output == (
            f"error: {typo}, field '--home': holds no jodkit database (jodkit.sqlite): give "
            "the --home of 'jod campaign create' or 'jod serve', or --db\n"
        )
    assert not typo.exists()


def test_export_writes_its_folder_whole_and_refuses_a_file_as_folder(make_spec, home, tmp_path):
    assert _jod("campaign", "create", str(make_spec()), "--home", str(home)).exit_code == 0
    (tmp_path / "taken").write_text("mine")
    refused = _jod("export", "test", "-o", str(tmp_path / "taken"), "--home", str(home))
    assert refused.exit_code == 2
    assert refused.output == f"error: {tmp_path / 'taken'}: -o/--output is a file: give a folder\n"
    assert (tmp_path / "taken").read_text() == "mine"
    done = _jod("export", "test", "-o", str(tmp_path / "out"), "--home", str(home))
    assert done.exit_code == 0, done.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [  # no answers yet: no count matrices
        "report.md",
        "trials_cross_content.csv",
        "trials_cross_content.csv.meta.json",
        "trials_per_scene.csv",
        "trials_per_scene.csv.meta.json",
    ]
