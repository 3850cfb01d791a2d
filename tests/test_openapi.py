"""The OpenAPI document: served, valid, complete, and true to real answers.

Every answer of the `client` fixture (so of every API test) is checked against the document
by tests/contract.py; these tests check the document itself and that check.
"""
import re

from openapi_spec_validator import validate

from .contract import Contract

API_MD_OPERATIONS = {
    ("get", "/api/health"), ("post", "/api/check-chunks"), ("post", "/api/upload-chunk"),
    ("post", "/api/complete-upload"), ("get", "/api/upload-status/{md5}/{fileName}"),
    ("delete", "/api/upload/{md5}/{fileName}"), ("get", "/api/stats"),
}


def test_document_is_served_and_valid_openapi(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"].startswith("3.")
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert API_MD_OPERATIONS <= documented


def test_upload_chunk_body_is_multipart_with_a_binary_part(client):
    document = client.get("/api/openapi.json").get_json()
    body = document["paths"]["/api/upload-chunk"]["post"]["requestBody"]["content"]
    schema = document["components"]["schemas"]["ChunkUpload"]
    assert list(body) == ["multipart/form-data"]
    assert schema["properties"]["chunk"] == {"type": "string", "format": "binary"}
    assert {"chunk", "chunkIndex", "md5", "fileName", "totalChunks"} <= set(schema["required"])


def test_limits_in_the_document_follow_the_configuration(app):
    app.config["MAX_TOTAL_CHUNKS"] = 77
    schemas = Contract(app).document["components"]["schemas"]
    assert schemas["Identity"]["properties"]["totalChunks"]["maximum"] == 77


def test_every_route_is_documented(app):
    """A new route without documentation fails here, not silently."""
    paths = Contract(app).document["paths"]
    contract = Contract(app)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            template, operation = contract.operation(method, _example(rule.rule))
            assert operation is not None, f"{method} {rule.rule} is undocumented"
            assert template in paths


def test_the_checked_client_refuses_an_undocumented_answer(app, client):
    """The check itself can fail: an answer shape the document does not allow is caught."""
    contract = Contract(app)
    health = client.get("/api/health").get_json()
    contract.check("GET", "/api/health", 200, "application/json", health)
    try:
        contract.check("GET", "/api/health", 200, "application/json", {**health, "status": 1})
    except AssertionError as exc:
        assert "does not match" in str(exc)
    else:
        raise AssertionError("a wrong body passed the check")
    try:
        contract.check("GET", "/api/stats", 418, "application/json", {})
    except AssertionError as exc:
        assert "not documented" in str(exc)
    else:
        raise AssertionError("an undocumented status passed the check")


def _example(rule: str) -> str:
    return re.sub(r"<(?:path:)?md5>", "0" * 32, re.sub(r"<[^<>]+>", "x", rule))
