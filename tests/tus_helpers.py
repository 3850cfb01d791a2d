"""Driving the tus endpoint from tests: headers, creation and appending."""
import base64
import hashlib

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                    for key, value in pairs.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def create(client, length: int | None = None, name: str = "tus.bin", **headers):
    """POST a new upload; length None defers it."""
    sent = {**TUS, "Upload-Metadata": metadata(filename=name), **headers}
    if length is None:
        sent.setdefault("Upload-Defer-Length", "1")
    else:
        sent["Upload-Length"] = str(length)
    return client.post("/files/", headers=sent)


def path_of(response) -> str:
    """The upload's path from a creation answer's Location."""
    location = response.headers["Location"]
    return location[location.index("/files/"):]


def patch(client, path: str, offset: int, body: bytes, **headers):
    return client.patch(path, data=body, content_type=OFFSET_STREAM,
                        headers={**TUS, "Upload-Offset": str(offset), **headers})


def head(client, path: str):
    return client.head(path, headers=TUS)
