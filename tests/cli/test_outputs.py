"""Outputs take their place only when complete (scaling.outputs), and never overwrite inputs."""

from __future__ import annotations

import os

import pytest

from scaling.errors import InputError
from scaling.outputs import check_outputs, output_file, staged


def _listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_output_file_renames_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "t.csv"
    with output_file(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".csv"
        assert temporary.name.startswith(".t.")
        temporary.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), output_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full half-way")
    assert target.read_text() == "new" and _listing(tmp_path) == ["t.csv"]


def test_output_file_removes_the_folders_it_made_when_it_fails(tmp_path):
    with pytest.raises(RuntimeError), output_file(tmp_path / "a" / "b" / "t.png") as temporary:
        temporary.write_bytes(b"x")
        raise RuntimeError
    assert _listing(tmp_path) == []


def test_output_file_names_the_target_not_the_temporary_file(tmp_path):
    with pytest.raises(PermissionError) as caught, output_file(tmp_path / "t.csv") as temporary:
        raise PermissionError(13, "Permission denied", str(temporary))
    assert caught.value.filename == str(tmp_path / "t.csv")


def test_staged_writes_all_or_nothing(tmp_path):
    (tmp_path / "old.csv").write_text("old")
    with pytest.raises(IsADirectoryError):  # the third output is a folder
        (tmp_path / "plots" / "x.png").mkdir(parents=True)
        with staged():
            for name in ("old.csv", "new.csv", "plots/x.png"):
                with output_file(tmp_path / name) as temporary:
                    temporary.write_text("written")
    assert (tmp_path / "old.csv").read_text() == "old"
    assert _listing(tmp_path) == ["old.csv", "plots", "plots/x.png"]
    with staged():
        for name in ("old.csv", "new.csv", "more/y.png"):
            with output_file(tmp_path / name) as temporary:
                temporary.write_text("written")
                with staged():  # nested: still waits for the outermost block
                    assert not (tmp_path / "new.csv").exists()
        assert (tmp_path / "old.csv").read_text() == "old"
    assert (tmp_path / "new.csv").read_text() == "written"
    assert (tmp_path / "more" / "y.png").read_text() == "written"


def test_written_files_follow_the_umask_not_mkstemp(tmp_path):
    with output_file(tmp_path / "t.csv") as temporary:
        temporary.write_text("x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize(
    ("outputs", "folders", "message"),
    [
        ({"-o/--output": "t.csv"}, {}, "t.csv: -o/--output would overwrite the input INPUT"),
        ({"-o/--output": "./sub/../t.csv"}, {}, "would overwrite the input INPUT"),
        ({"-o/--output": "s.csv", "--screen": "s.csv"}, {}, "--screen and -o/--output name"),
        ({"-o/--output": "sub"}, {}, "sub: -o/--output is a folder: give a file name"),
        ({"-o/--output": "t.csv/x.csv"}, {}, "t.csv is a file, not a folder"),
        ({}, {"--plots": "t.csv"}, "t.csv: --plots is a file: give a folder"),
        ({}, {"--plots": "t.csv/plots"}, "--plots cannot be written: t.csv is a file"),
    ],
)
def test_check_outputs_refuses(tmp_path, monkeypatch, outputs, folders, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text("a,b\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError) as caught:
        check_outputs({"INPUT": "t.csv"}, outputs, folders)
    assert message in str(caught.value)


def test_check_outputs_sees_a_hard_link_as_the_same_file(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n")
    os.link(tmp_path / "t.csv", tmp_path / "link.csv")
    with pytest.raises(InputError, match="would overwrite the input"):
        check_outputs({"INPUT": tmp_path / "t.csv"}, {"-o": tmp_path / "link.csv"})
    check_outputs({"INPUT": tmp_path / "t.csv"}, {"-o": tmp_path / "new.csv", "--x": None})
