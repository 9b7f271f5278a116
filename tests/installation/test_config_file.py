"""Config saves while the show runs (MIDI learn): fsync'd, symlinks kept, an edit made meanwhile
kept, temporary files of a killed save removed at start."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from installation.config import load_config
from installation.config_file import ConfigSaveConflict, remove_stale_temps, rewrite
from installation.operators.midi_learn import save_cc_mapping

ROOT = Path(__file__).resolve().parents[2]
KNOB = {"cc": 20, "param": "brightness", "min": 0.0, "max": 1.0, "curve": "linear", "channel": 3}


def test_a_save_through_a_symlink_keeps_the_link_and_writes_its_target(tmp_path):
    real = tmp_path / "shows" / "museum.toml"
    real.parent.mkdir()
    shutil.copy(ROOT / "config.toml", real)
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    save_cc_mapping(link, KNOB)
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert [m.cc for m in load_config(real).control.midi_cc] == [20]
    assert not list(real.parent.glob(".config-*")) and not list(tmp_path.glob(".config-*"))


def test_the_new_text_and_the_folder_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_cc_mapping(path, KNOB)
    assert events == ["fsync", "replace", "fsync"]  # the file's data, the rename, the folder's entry


def test_an_edit_made_while_a_learn_is_saved_is_kept_not_reverted(tmp_path):
    path = tmp_path / "config.toml"
    shutil.copy(ROOT / "config.toml", path)
    edits = iter([True])

    def learn_racing_an_editor(text: str) -> str:
        if next(edits, False):  # the operator saves in an editor between the learn's read and its rename
            edited = path.read_text().replace("[control]", "[control]\n# the operator's edit", 1)
            path.write_text(edited)
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
        return text.replace("[control]", "[control]\n# learned", 1)

    rewrite(path, learn_racing_an_editor)
    text = path.read_text()
    assert "# the operator's edit" in text and "# learned" in text


def test_a_file_that_keeps_changing_is_not_written_over(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[control]\n")

    def always_racing(text: str) -> str:
        path.write_text(path.read_text() + "# edit\n")
        return text + "# learned\n"

    with pytest.raises(ConfigSaveConflict):
        rewrite(path, always_racing)
    assert "# learned" not in path.read_text() and not list(tmp_path.glob(".config-*"))


def test_temporary_files_of_a_killed_save_are_removed_at_start(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("")
    stale = [tmp_path / ".config-abc123.toml", tmp_path / ".config-x.toml"]
    for f in stale:
        f.write_text("[control]\n")
    other = tmp_path / "notes.toml"
    other.write_text("")
    assert sorted(remove_stale_temps(path)) == sorted(stale)
    assert not any(f.exists() for f in stale) and other.exists() and path.exists()
