"""Checks real answers against the OpenAPI document, so that the document cannot drift."""
import tempfile

from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.exceptions import MethodNotAllowed, NotFound

from uploadsvc import create_app
from uploadsvc.http import openapi
from uploadsvc.http.openapi.served import template as openapi_path

from .helpers import ClosingClient


def served_document(**config) -> dict:
    """The document that an app with this configuration (over the defaults and the
    environment, as the `app` fixture has them) serves at /api/openapi.json."""
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app({"TESTING": True, "DATA_DIR": data_dir, **config})
        response = app.test_client().get("/api/openapi.json")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()


# Where a test's app lives (its data directory, database, bucket prefix) is not in the
# document; everything else in its configuration may be.
_PER_TEST = {"DATA_DIR", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "STORAGE_URL"}
_documents: dict[str, dict] = {}


def document_of(app) -> dict:
    """openapi.build(app), built once per configuration and URL map (read it, never change
    it): building takes longer than most tests, and almost every test's app has one of a
    few configurations."""
    config = sorted((name, repr(value)) for name, value in app.config.items()
                    if name not in _PER_TEST)
    rules = sorted((rule.rule, rule.endpoint, sorted(rule.methods or ()))
                   for rule in app.url_map.iter_rules())
    key = repr((config, rules))
    if key not in _documents:
        _documents[key] = openapi.build(app)
    return _documents[key]


class Contract:
    """The OpenAPI document of one app, and the check of one answer against it."""

    def __init__(self, app) -> None:
        self.app = app
        self.document = document_of(app)
        self.checked: list[tuple[str, str, int]] = []

    def operation(self, method: str, path: str) -> tuple[str | None, dict | None]:
        """(path template, operation) documented for a request; (None, None) if unrouted."""
        adapter = self.app.url_map.bind("localhost")
        try:
            rule, _ = adapter.match(path, method=method, return_rule=True)
        except (NotFound, MethodNotAllowed):
            return None, None
        template = openapi_path(rule.rule)
        operations = self.document["paths"].get(template, {})
        if method == "HEAD" and "head" not in operations:  # a GET without its body
            method = "GET"
        return template, operations.get(method.lower())

    def check(self, method: str, path: str, status: int, content_type: str, body,
              headers=None) -> None:
        """Fail unless the answer's status, body and required headers are documented for
        this request."""
        template, operation = self.operation(method, path)
        if template is None or (operation is None and method == "OPTIONS"):
            if path.startswith("/api/") and method != "OPTIONS":
                assert status in (404, 405), (method, path, status)
                self.validate(body, "#/components/schemas/Error")
            return
        assert operation is not None, f"{method} {template} is not in the OpenAPI document"
        answer = operation["responses"].get(str(status))
        assert answer is not None, f"{method} {template}: status {status} is not documented"
        if "$ref" in answer:  # a shared answer, #/components/responses/<name>
            answer = self.document["components"]["responses"][answer["$ref"].rpartition("/")[2]]
        for name, spec in answer.get("headers", {}).items():
            if spec.get("required") and headers is not None:
                assert name in headers, f"{method} {template} {status}: no {name} header"
        content = answer.get("content", {})
        if not content or method == "HEAD":
            assert not body, (method, template, status)
        else:
            assert content_type in content or "*/*" in content, (method, template, content_type)
        if content_type == "application/json" and method != "HEAD":
            schema = content["application/json"]["schema"]
            self.validate(body, schema.get("$ref") or schema)
        self.checked.append((method, template, status))

    def validate(self, body, schema) -> None:
        root = {"$ref": schema} if isinstance(schema, str) else dict(schema)
        root["components"] = self.document["components"]
        errors = list(Draft202012Validator(root).iter_errors(body))
        assert not errors, f"{body!r} does not match {schema}: {errors[0].message}"


class CheckedClient(FlaskClient):
    """A test client that checks every answer against the app's OpenAPI document."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        contract = self.application.extensions.get("test_contract")
        if contract is None:
            contract = self.application.extensions["test_contract"] = Contract(self.application)
        request = response.request
        body = (response.get_json(silent=True) if response.mimetype == "application/json"
                else response.get_data()) if response.status_code != 304 else None
        contract.check(request.method, request.path, response.status_code, response.mimetype,
                       body, response.headers)
        return response


class TestClient(ClosingClient, CheckedClient):
    """ClosingClient's reading, CheckedClient's checks."""
