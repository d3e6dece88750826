"""The one atomic writer every package uses."""

import json
import os
import stat

import pytest

from data_stubs.files import write_atomic, write_bytes_atomic, write_json_atomic


def test_writes_creates_folders_and_returns_the_path(tmp_path):
    target = tmp_path / "a" / "b" / "out.json"
    assert write_json_atomic(target, {"x": [1, 2]}) == target
    assert json.loads(target.read_text()) == {"x": [1, 2]}
    assert target.read_text().endswith("\n")
    write_bytes_atomic(target, b"replaced")
    assert target.read_bytes() == b"replaced"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "best.keras"
    target.write_bytes(b"old checkpoint")

    def broken(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.keras"]


def test_temporary_name_ends_with_the_whole_target_name(tmp_path):
    # Keras checks extensions: model.save wants ".keras", save_weights ".weights.h5".
    seen = []
    write_atomic(tmp_path / "m.weights.h5", lambda tmp: (seen.append(tmp), open(tmp, "wb").close()))
    assert seen[0].endswith("-m.weights.h5")
    assert os.path.dirname(seen[0]) == str(tmp_path)


def test_files_get_the_usual_permissions_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_bytes_atomic(tmp_path / "shared.png", b"png")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
