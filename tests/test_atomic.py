"""thawdetect.core.atomic: a file appears whole at its path, or the old one stays."""

from __future__ import annotations

import os

import pytest

from thawdetect.core.atomic import (
    atomic_path,
    temp_path_for,
    write_bytes_atomic,
    write_text_atomic,
)


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_success_replaces_the_old_file(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".out.json.") and tmp.name.endswith(".tmp.json")
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing shows before the block ends
    assert target.read_text() == "new"
    assert _entries(tmp_path) == ["out.json"]


def test_an_exception_leaves_the_old_file_and_no_temporary_files(tmp_path):
    target = tmp_path / "out.gpkg"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        tmp.with_name(tmp.name + "-journal").write_bytes(b"j")  # a sidecar named after it
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert _entries(tmp_path) == ["out.gpkg"]


def test_an_exception_removes_a_folder_written_at_the_temporary_path(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        (tmp / "sub").mkdir(parents=True)
        (tmp / "sub" / "a.npy").write_bytes(b"x")
        raise KeyboardInterrupt
    assert _entries(tmp_path) == []


def test_a_folder_written_whole_replaces_a_missing_target(tmp_path):
    target = tmp_path / "entry"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("a")
    assert (target / "a.txt").read_text() == "a"
    assert _entries(tmp_path) == ["entry"]


def test_nothing_written_raises_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["out.txt"]


def test_sidecars_of_a_successful_write_are_removed(tmp_path):
    target = tmp_path / "r.tif"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"tif")
        tmp.with_name(tmp.name + ".aux.xml").write_text("<stats/>")
    assert target.read_bytes() == b"tif"
    assert _entries(tmp_path) == ["r.tif"]


def test_concurrent_temporary_names_differ(tmp_path):
    target = tmp_path / "same.npy"
    with atomic_path(target) as a, atomic_path(target) as b:
        assert a != b
        assert a.parent == b.parent == tmp_path
        assert str(os.getpid()) in a.name
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert target.read_bytes() == b"a"  # the outer block ends last: its file wins
    assert _entries(tmp_path) == ["same.npy"]
    assert len({temp_path_for(target) for _ in range(100)}) == 100


def test_suffix_keeps_the_extension_drivers_look_at(tmp_path):
    assert temp_path_for(tmp_path / "model.onnx").suffix == ".onnx"
    assert temp_path_for(tmp_path / "c.tif", suffix=".cog.tif").name.endswith(".tmp.cog.tif")
    assert temp_path_for(tmp_path / "noext", suffix="").name.endswith(".tmp")


def test_the_parent_folder_is_created(tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent.is_dir()
        tmp.write_text("x")
    assert target.read_text() == "x"
    write_bytes_atomic(tmp_path / "d" / "e.bin", b"\x00")
    assert (tmp_path / "d" / "e.bin").read_bytes() == b"\x00"


def test_write_text_and_bytes_round_trip(tmp_path):
    text = "Ålesund ✓ permafrost\nline 2\n"
    write_text_atomic(tmp_path / "t.txt", text)
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == text
    write_text_atomic(tmp_path / "t.txt", "short")  # replaces, does not append
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "short"
    write_text_atomic(tmp_path / "l1.txt", "é", encoding="latin-1")
    assert (tmp_path / "l1.txt").read_bytes() == b"\xe9"
    data = bytes(range(256)) * 3
    write_bytes_atomic(tmp_path / "b.bin", data)
    assert (tmp_path / "b.bin").read_bytes() == data
    assert _entries(tmp_path) == ["b.bin", "l1.txt", "t.txt"]


def test_without_fsync_the_result_is_the_same(tmp_path):
    with atomic_path(tmp_path / "x.txt", fsync=False) as tmp:
        tmp.write_text("x")
    assert (tmp_path / "x.txt").read_text() == "x"


def test_the_ledger_helper_writes_through_it(tmp_path):
    from thawdetect.core.run.ledger import write_atomic

    write_atomic(tmp_path / "run" / "m.json", '{"a": "ø"}')
    write_atomic(tmp_path / "run" / "m.bin", b"\x01")
    assert (tmp_path / "run" / "m.json").read_text(encoding="utf-8") == '{"a": "ø"}'
    assert (tmp_path / "run" / "m.bin").read_bytes() == b"\x01"
    assert _entries(tmp_path / "run") == ["m.bin", "m.json"]
