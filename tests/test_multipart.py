"""Large chunk bodies go through the fast multipart parser: same form, same errors."""
import hashlib
import os

from .helpers import TestFile

BOUNDARY = "b0undary"


def raw_post(client, body: bytes):
    return client.post("/api/upload-chunk", data=body,
                       content_type=f"multipart/form-data; boundary={BOUNDARY}")


def form(fields: dict, payload: bytes) -> bytes:
    parts = b"".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                     f"{v}\r\n".encode() for k, v in fields.items())
    return (parts + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="chunk"; '
            f'filename="blob"\r\n\r\n'.encode() + payload + f"\r\n--{BOUNDARY}--\r\n".encode())


def test_a_large_chunk_is_stored_byte_exact(client, data_dir):
    # (raw bodies: werkzeug's test client leaves its temp file of a large form open)
    f = TestFile(os.urandom(3 * 1024 * 1024 + 5), 1024 * 1024, "large.bin")
    for index in range(f.total):
        fields = {"chunkIndex": index, "md5": f.md5, "fileName": f.name, "totalChunks": f.total}
        assert raw_post(client, form(fields, f.chunk(index))).status_code == 200
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["md5"] == hashlib.md5(f.data).hexdigest()
    assert (data_dir / "uploads" / "large.bin").read_bytes() == f.data


def test_a_large_body_whose_fields_follow_the_file_is_parsed(client, data_dir):
    payload = os.urandom(600_000)
    md5 = hashlib.md5(payload).hexdigest()
    fields = {"chunkIndex": 0, "md5": md5, "fileName": "late.bin", "totalChunks": 1}
    end = f"--{BOUNDARY}--\r\n".encode()
    file_part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="chunk"'.encode()
    file_first = form({}, payload).removesuffix(end)
    file_first += form(fields, b"").split(file_part)[0] + end
    assert raw_post(client, file_first).status_code == 200
    assert client.post("/api/complete-upload", json={
        "md5": md5, "fileName": "late.bin", "totalChunks": 1}).get_json()["size"] == 600_000


def test_a_truncated_large_body_is_a_400_and_leaves_no_temp_file(client, data_dir):
    body = form({"chunkIndex": 0, "md5": "0" * 32, "fileName": "cut.bin", "totalChunks": 1},
                os.urandom(600_000))
    response = raw_post(client, body[:-30])
    assert response.status_code == 400 and response.get_json()["success"] is False
    assert list((data_dir / "temp").iterdir()) == []


def test_an_oversized_text_field_in_a_large_body_is_a_413(client, data_dir):
    body = form({"chunkIndex": 0, "md5": "0" * 32, "fileName": "x" * 800_000,
                 "totalChunks": 1}, b"abc")
    response = raw_post(client, body)
    assert response.status_code == 413 and response.get_json()["success"] is False
    assert list((data_dir / "temp").iterdir()) == []
