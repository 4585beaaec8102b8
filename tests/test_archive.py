"""Hostile zips: every way out of the bundle's root, every kind of bomb, and the limits, refused
with the entry named; what is fine unpacks whole with its executable bits, or not at all."""

from __future__ import annotations

import base64
import io
import random
import stat
import zipfile
from pathlib import Path

import pytest

from router import archive
from router.archive import ArchiveError
from tests.conftest import Router, unique


def make_zip(*entries: tuple[str, bytes | str, int], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip from (name, content, unix mode) entries; a mode with S_IFLNK makes a symlink."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as out:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = mode << 16
            info.compress_type = method
            out.writestr(info, content)
    return buffer.getvalue()


FILE = stat.S_IFREG | 0o644
EXECUTABLE = stat.S_IFREG | 0o755
LINK = stat.S_IFLNK | 0o777


@pytest.mark.parametrize(
    ("entries", "offender"),
    [
        ([("../evil.sh", "x", FILE)], "../evil.sh"),
        ([("a/../../evil.sh", "x", FILE)], "a/../../evil.sh"),
        ([("/etc/cron.d/evil", "x", FILE)], "/etc/cron.d/evil"),
        ([("C:/Windows/evil.dll", "x", FILE)], "C:/Windows/evil.dll"),
        ([("C:\\Windows\\evil.dll", "x", FILE)], "C:\\Windows\\evil.dll"),
        ([("..\\evil.sh", "x", FILE)], "..\\evil.sh"),
        ([("link", "/etc/passwd", LINK)], "link"),
        ([("link", "../../outside", LINK)], "link"),
        ([("dir/link", "../../outside", LINK)], "dir/link"),
        # a link inside the root that is then climbed out of: resolved lexically it looks fine
        ([("here", ".", LINK), ("out", "here/..", LINK)], "out"),
        ([("etc", "/etc", LINK), ("etc/passwd", "x", FILE)], "etc"),
        ([("ok", "a", LINK), ("ok/passwd", "x", FILE)], "ok/passwd"),
        pytest.param(
            [("same.txt", "1", FILE), ("same.txt", "2", FILE)],
            "same.txt",
            marks=pytest.mark.filterwarnings("ignore:Duplicate name"),
        ),
    ],
)
def test_paths_out_of_the_root_are_refused_naming_the_entry(
    entries: list[tuple[str, str, int]], offender: str, tmp_path: Path
) -> None:
    data = make_zip(*entries)
    with pytest.raises(ArchiveError) as refused:
        archive.check(data)
    assert refused.value.status == 400
    assert refused.value.entry == offender
    assert repr(offender) in str(refused.value)
    with pytest.raises(ArchiveError):
        archive.unpack(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing is left of a refused bundle
    assert not (tmp_path / "evil.sh").exists()


def test_a_compression_bomb_is_stopped_while_inflating() -> None:
    bomb = make_zip(("bomb.bin", b"\0" * (64 * 1024 * 1024), FILE))
    assert len(bomb) < 100 * 1024
    with pytest.raises(ArchiveError) as refused:
        archive.check(bomb)
    assert refused.value.status == 400
    assert refused.value.entry == "bomb.bin"
    assert "compression bomb" in str(refused.value)


def test_a_header_that_understates_the_size_does_not_help() -> None:
    """The sizes in a zip's headers are the sender's claim: make one claim 10 bytes."""
    data = bytearray(make_zip(("big.bin", b"\0" * (8 * 1024 * 1024), FILE)))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveError) as refused:
        archive.check(bytes(data))
    assert refused.value.entry == "big.bin"


def test_over_250_mb_unzipped_is_413_naming_the_limit() -> None:
    # 64 KiB that compress about 25 times (no bomb), repeated beyond deflate's 32 KiB window
    noise = random.Random(12).randbytes
    chunk = b"".join(noise(40) + b"\0" * 984 for _ in range(64))
    entries = [(f"part{i}.bin", chunk * 480, FILE) for i in range(9)]  # 9 x 30 MiB
    data = make_zip(*entries)
    assert len(data) < archive.MAX_ZIPPED
    with pytest.raises(ArchiveError) as refused:
        archive.check(data)
    assert refused.value.status == 413
    assert "250 MB" in str(refused.value)


def test_over_50_mb_zipped_is_413_naming_the_limit() -> None:
    with pytest.raises(ArchiveError) as refused:
        archive.check(b"PK" + b"\0" * archive.MAX_ZIPPED)
    assert refused.value.status == 413
    assert "50 MB" in str(refused.value)


def test_too_many_entries_and_not_a_zip_are_refused() -> None:
    many = make_zip(*((f"f{i}", "", FILE) for i in range(archive.MAX_ENTRIES + 1)))
    with pytest.raises(ArchiveError, match="entries"):
        archive.check(many)
    with pytest.raises(ArchiveError, match="not a valid zip"):
        archive.check(b"this is not a zip")
    with pytest.raises(ArchiveError, match="empty"):
        archive.check(make_zip())


def test_a_good_bundle_unpacks_whole_with_its_modes(tmp_path: Path) -> None:
    data = make_zip(
        ("bootstrap", "#!/bin/sh\necho hi\n", EXECUTABLE),
        ("lib/util.sh", "util", FILE),
        ("lib/", "", stat.S_IFDIR | 0o755),
        ("bin/tool", "../lib/util.sh", LINK),
        ("bin/", "", stat.S_IFDIR | 0o755),
    )
    contents = archive.unpack(data, tmp_path / "b")
    assert contents.has_executable("bootstrap")
    assert not contents.has_executable("lib/util.sh")
    root = tmp_path / "b"
    assert (root / "bootstrap").stat().st_mode & 0o111
    assert not (root / "lib" / "util.sh").stat().st_mode & 0o111
    assert (root / "bin" / "tool").is_symlink()
    assert (root / "bin" / "tool").read_text() == "util"


def test_the_api_refuses_hostile_zips_naming_the_entry(router: Router) -> None:
    for data, status, entry in (
        (make_zip(("../evil.sh", "x", FILE)), 400, "../evil.sh"),
        (make_zip(("link", "/etc/passwd", LINK)), 400, "link"),
        (make_zip(("bomb.bin", b"\0" * (64 * 1024 * 1024), FILE)), 400, "bomb.bin"),
    ):
        response = router.http.put(
            f"/api/v1/functions/{unique('zip')}",
            json={
                "runtime": "python3.11",
                "handler": "lambda_function.handler",
                "code": {"zip": base64.b64encode(data).decode()},
            },
        )
        assert response.status_code == status, response.text
        body = response.json()
        assert body["field"] == "code"
        assert body["entry"] == entry
    raw = router.http.put(
        f"/api/v1/functions/{unique('zip')}",
        json={"runtime": "python3.11", "handler": "a.b", "code": {"zip": "not base64!"}},
    )
    assert raw.status_code == 400
    assert raw.json()["field"] == "code.zip"


def test_the_api_refuses_an_upload_over_50_mb(router: Router) -> None:
    name = unique("big")
    router.put_function(name, handler="testfns:record")
    response = router.http.put(
        f"/api/v1/functions/{name}/code",
        content=b"\0" * (archive.MAX_ZIPPED + 1),
        headers={"Content-Type": "application/zip"},
    )
    assert response.status_code == 413
    assert "50 MB" in response.json()["error"]


def test_a_bundle_appears_complete_or_not_at_all(tmp_path: Path) -> None:
    """Unpacking goes to a temporary directory renamed into place: a refused zip leaves
    nothing, a racing unpacker of the same bundle loses quietly, leftovers are swept."""
    from concurrent.futures import ThreadPoolExecutor

    from router.bundles import _unpack

    target = tmp_path / "code" / "abc"
    target.parent.mkdir()
    bad = make_zip(("ok.txt", "fine", FILE), ("../evil", "x", FILE))
    with pytest.raises(ArchiveError):
        _unpack(bad, target)
    assert list(target.parent.iterdir()) == []
    good = make_zip(*((f"f{i}.txt", "x" * 1000, FILE) for i in range(200)))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: _unpack(good, target), range(4)))
    assert sorted(p.name for p in target.parent.iterdir()) == ["abc"]
    assert len(list(target.iterdir())) == 200
