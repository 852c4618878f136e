import os
import subprocess
import sys

import pytest

from frugalml.common import CorruptFileError, DataNotFoundError
from frugalml.common.files import atomic_write, read_container, read_header, write_container


def test_atomic_write_keeps_old_content_when_the_writer_fails(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"new but unfinished")
            raise RuntimeError("crash")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.bin"]


def test_atomic_write_survives_a_killed_process(tmp_path):
    """A process killed mid-write (os._exit, no cleanup) leaves no partial target file."""
    path = tmp_path / "model.bin"
    code = (
        "import os, sys\n"
        "from frugalml.common.files import atomic_write\n"
        f"with atomic_write({str(path)!r}) as f:\n"
        "    f.write(b'x' * 100000); f.flush(); os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    assert not path.exists()
    with atomic_write(path) as f:
        f.write(b"complete")
    assert path.read_bytes() == b"complete"


def test_container_round_trip_and_alignment(tmp_path):
    path = tmp_path / "f.pk"
    meta = {"features": 4, "classes": [0, 1]}
    written = write_container(path, b"TESTFMT", 2, meta, [b"a" * 10, b"b" * 5], align=4096)
    assert written.payload_offset == 4096
    header, payload = read_container(path, b"TESTFMT", max_version=2)
    assert header.metadata == meta and header.version == 2
    assert payload == b"a" * 10 + b"b" * 5


@pytest.mark.parametrize("damage", ["payload", "header", "truncate", "magic", "version"])
def test_container_damage_is_detected(tmp_path, damage):
    path = tmp_path / "f.pk"
    write_container(path, b"TESTFMT", 1, {"k": 1}, b"0123456789" * 100, align=64)
    raw = bytearray(path.read_bytes())
    if damage == "payload":
        raw[-3] ^= 0xFF
    elif damage == "header":
        raw[66] ^= 0xFF
    elif damage == "truncate":
        raw = raw[:-10]
    elif damage == "magic":
        raw[0] ^= 0xFF
    path.write_bytes(bytes(raw))
    max_version = 0 if damage == "version" else 1
    with pytest.raises(CorruptFileError):
        read_container(path, b"TESTFMT", max_version=max_version)


def test_missing_container(tmp_path):
    with pytest.raises(DataNotFoundError):
        read_header(tmp_path / "absent", b"TESTFMT", 1)


def test_atomic_write_gives_the_permissions_open_would(tmp_path):
    import os

    from frugalml.common.files import atomic_write

    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "x.txt", "w") as f:
            f.write("hi")
    finally:
        os.umask(old)
    assert (tmp_path / "x.txt").stat().st_mode & 0o777 == 0o644


def test_atomic_write_creates_folders_only_when_asked(tmp_path):
    import pytest

    from frugalml.common.errors import DataNotFoundError
    from frugalml.common.files import atomic_write

    with pytest.raises(DataNotFoundError, match="does not exist; create it first"):
        with atomic_write(tmp_path / "missing" / "x.txt", "w") as f:
            f.write("never")
    assert not (tmp_path / "missing").exists()
    with atomic_write(tmp_path / "made" / "x.txt", "w", create_parents=True) as f:
        f.write("ok")
    assert (tmp_path / "made" / "x.txt").read_text() == "ok"
