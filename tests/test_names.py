"""Hostile file names and md5 values: refused, or stored under a safe name inside the data
directory, with the original name kept for display."""
import os
import unicodedata
from urllib.parse import quote

import pytest

from uploadsvc.core.naming import _RESERVED_CHARS, _WINDOWS_DEVICES

from .helpers import TestFile, send_chunk

REFUSED = [
    "", ".", "..", "../../etc/passwd", "/etc/passwd", "a/b", "..\\..\\win.ini",
    "C:\\Windows\\system32\\cmd.exe", "\\\\server\\share\\x", "nul\x00byte", "line\nbreak",
    "tab\there", "bell\x07", "esc\x1b[31m", "del\x7f", "c1\x85", "é" * 128 + "x",  # 257 bytes
    "a" * 256,
]
ACCEPTED = [
    "C:evil.txt", "CON", "con.txt", "PRN.log", "AUX", "NUL.tar.gz", "COM1", "lpt9.doc",
    "trailing dot.", "trailing space ", " leading space", "...", ". .", "name:stream",
    "invoice\u202etxt.exe", "zero\u200bwidth", "bom\ufeff", "Cafe\u0301.txt", "Café.txt",
    "ﬁle.txt", "＼fullwidth＼slash", "∕division∕slash", "quote\"and<angle>|pipe?*",
    "a" * 255, "é" * 127 + "x", "🙂" * 63 + "abc", "x" * 248 + ".tar.gz", ".hidden",
    "-rf", "$(reboot)", "%2e%2e%2f", "name.with.many.dots.",
]
MD5S = ["../../../../etc/passwd", "0" * 31, "0" * 33, "g" * 32, "０" * 32, "0" * 32 + "\n",
        "%2e%2e%2f" + "0" * 23, " " + "0" * 31, "0" * 16 + "/" + "0" * 15]


def files_outside(root, data_dir) -> list[str]:
    """Every file under root that is not inside data_dir."""
    found = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.realpath(path).startswith(str(data_dir) + os.sep):
                found.append(path)
    return found


def assert_safe_stored_name(name: str) -> None:
    assert name == os.path.basename(name) and name not in ("", ".", "..")
    assert len(name.encode()) <= 255
    assert not name.endswith((".", " ")) and not name.startswith(" ")
    assert not any(ch in _RESERVED_CHARS or unicodedata.category(ch)[0] == "C" for ch in name)
    assert name.split(".")[0].upper() not in _WINDOWS_DEVICES
    assert unicodedata.is_normalized("NFC", name)


@pytest.mark.parametrize("name", REFUSED)
def test_hostile_names_are_refused(client, data_dir, tmp_path, name):
    f = TestFile(b"payload", 1024, name)
    response = send_chunk(client, f, 0)
    assert response.status_code == 400, name
    assert response.get_json()["error"] == "invalid_input"
    assert client.post("/api/check-chunks", json=f.ident()).status_code == 400
    assert client.post("/api/complete-upload", json=f.ident()).status_code == 400
    assert files_outside(tmp_path, data_dir) == []
    assert not any((data_dir / "chunks").iterdir())


@pytest.mark.parametrize("name", ACCEPTED)
def test_odd_names_are_stored_safely_and_kept_for_display(client, data_dir, tmp_path, name):
    f = TestFile(name.encode("utf-8", "surrogatepass") + b"!", 1024, name)
    assert send_chunk(client, f, 0).status_code == 200, name
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["fileName"] == name
    stored = done["path"].removeprefix("/uploads/")
    assert_safe_stored_name(stored)
    assert (data_dir / "uploads" / stored).read_bytes() == f.data
    assert os.listdir(data_dir / "uploads") == [stored]
    status = client.get(f"/api/upload-status/{f.md5}/{quote(name, safe='')}")
    if name.strip() == name and "%" not in name:  # the router sees exactly these in a path
        assert status.status_code == 200 and status.get_json()["path"] == done["path"]
    assert files_outside(tmp_path, data_dir) == []


@pytest.mark.parametrize("md5", MD5S)
def test_hostile_md5_values_are_refused(client, data_dir, tmp_path, md5):
    f = TestFile(b"payload", 1024, "ok.bin")
    assert send_chunk(client, f, 0, md5=md5).status_code == 400
    for route in ("check-chunks", "complete-upload"):
        assert client.post(f"/api/{route}", json=f.ident(md5=md5)).status_code == 400
    response = client.get(f"/api/upload-status/{quote(md5, safe='')}/ok.bin")
    assert response.status_code in (400, 404)
    assert files_outside(tmp_path, data_dir) == []
    assert not any((data_dir / "chunks").iterdir())
