"""The ``jod`` command group: every subcommand listed in every install, each loaded only when
it runs, a missing extra named with the command that installs it, ``--version``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError

import pytest
import typer
from typer.testing import CliRunner

import jodkit.extras
from jodkit.cli import app, load_command
from jodkit.commands import COMMANDS
from scaling.version import __version__

runner = CliRunner()
HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "cvxpy",
    "matplotlib",
    "flask",
    "sqlalchemy",
    "torch",
    "transformers",
    "cv2",
    "skimage",
)


def _imports_after(args: list[str]) -> tuple[str, list[str]]:
    """Run ``jod ARGS`` in a fresh interpreter; its output and the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from jodkit.cli import app\n"
        "try:\n"
        f"    app({args!r}, prog_name='jod')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    *output, loaded = done.stdout.rstrip("\n").split("\n")
    return "\n".join(output), json.loads(loaded)


def test_help_lists_every_subcommand_and_imports_no_stage():
    output, loaded = _imports_after(["--help"])
    for spec in COMMANDS:
        assert re.search(rf"│ {spec.name} +", output), spec.name
    assert "pip install 'jodkit[app]'" in output and "pip install 'jodkit[train]'" in output
    assert loaded == []


def test_scale_help_imports_no_numerical_library():
    output, loaded = _imports_after(["scale", "--help"])
    assert "--output" in output and "--bootstrap" in output
    assert loaded == []


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


@pytest.mark.parametrize("spec", COMMANDS, ids=[spec.name for spec in COMMANDS])
def test_each_summary_is_the_first_paragraph_of_its_commands_help(spec):
    if spec.extra and jodkit.extras.missing_requirements(spec.extra):
        pytest.skip(f"the '{spec.extra}' extra is not installed")
    command = load_command(spec, "markdown")
    assert command.name == spec.name
    assert _first_paragraph(command.help) == spec.summary


def test_a_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(
        jodkit.extras,
        "missing_requirements",
        lambda extra: ["flask (absent)"] if extra == "app" else [],
    )
    for args in (["campaign", "create", "spec.yaml"], ["serve", "--help"], ["campaign"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.output == (
            f"error: 'jod {args[0]}' needs the 'app' extra (flask (absent)): "
            "pip install 'jodkit[app]' (or pip install -e '.[app]' in a clone)\n"
        )
    listing = runner.invoke(app, ["--help"])
    assert listing.exit_code == 0 and "campaign" in listing.output


def test_missing_requirements_reads_the_declared_extras(monkeypatch):
    assert jodkit.extras.missing_requirements("app") == []
    real_version = jodkit.extras.version

    def fake_version(name: str) -> str:
        if name == "flask":
            raise PackageNotFoundError(name)
        return "0.1" if name == "flask-login" else real_version(name)

    monkeypatch.setattr(jodkit.extras, "version", fake_version)
    assert jodkit.extras.missing_requirements("app") == [
        "flask (absent)",
        "flask-login>=0.6 (found 0.1)",
    ]
    assert jodkit.extras.missing_requirements("train") == []


def test_a_module_missing_at_import_is_reported_as_the_extra(monkeypatch, tmp_path):
    """When jodkit is not installed (no metadata), the import error itself names the extra."""
    (tmp_path / "jod_fake_stage.py").write_text("import not_a_real_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(jodkit.extras, "missing_requirements", lambda extra: [])
    spec = type(COMMANDS[0])("fake", "jod_fake_stage:command", "train", "A fake command.")
    with pytest.raises(Exception, match=r"'jod fake' needs the 'train' extra") as caught:
        load_command(spec, None)
    assert "not_a_real_package_xyz (absent)" in str(caught.value)


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output == f"jodkit {__version__}\n"


def test_groups_and_commands_load_as_click_commands():
    campaign = load_command(next(s for s in COMMANDS if s.name == "campaign"), None)
    assert isinstance(campaign, typer.core.TyperGroup) and "create" in campaign.commands
    scale = load_command(COMMANDS[0], None)
    assert isinstance(scale, typer.core.TyperCommand)
