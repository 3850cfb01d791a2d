"""Driving the tus endpoint in the IETF resumable upload draft from tests."""
PARTIAL = "application/partial-upload"
PROBLEM = "application/problem+json"
PROBLEM_BASE = "https://iana.org/assignments/http-problem-types#"
VERSIONS = [6, 7, 8, 9]


def draft(version: int, **headers) -> dict:
    """The draft's request headers of an interop version (Python names: Upload_Complete)."""
    return {"Upload-Draft-Interop-Version": str(version),
            **{name.replace("_", "-"): value for name, value in headers.items()}}


def path_of(response) -> str:
    location = response.headers["Location"]
    return location[location.index("/files/"):]


def create(client, version: int, body: bytes = b"", complete: bool = False, **headers):
    return client.post("/files/", data=body, headers=draft(
        version, Upload_Complete="?1" if complete else "?0", **headers))


def append(client, version: int, path: str, offset: int, body: bytes,
           complete: bool | None = False, **headers):
    sent = draft(version, Upload_Offset=str(offset), **headers)
    if complete is not None:
        sent["Upload-Complete"] = "?1" if complete else "?0"
    return client.patch(path, data=body, content_type=PARTIAL, headers=sent)


def offset_of(client, version: int, path: str):
    return client.head(path, headers=draft(version))


def problem(response, kind: str) -> dict:
    """The problem+json body of a draft error, checked to carry the API's members too."""
    assert response.mimetype == PROBLEM, response.get_data(as_text=True)
    body = response.get_json(force=True)
    assert body["type"] == PROBLEM_BASE + kind and body["title"]
    assert body["success"] is False and body["error"] and body["message"]
    return body
