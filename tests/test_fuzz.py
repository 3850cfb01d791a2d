"""Property-based fuzzing of every documented operation, generated from the OpenAPI document.

Schemathesis draws valid and invalid requests (bodies, multipart parts, path parameters)
from the document that an app of the default configuration serves (the operator endpoints
off) and sends them to the app of the `app` fixture; every answer must be documented
(status, content type, schema) and none may be a 5xx. A method the document does not list
for a path must be answered 405 (with Allow): a path listed but not served (404) fails. The
number of examples per operation is bounded so that the whole run stays well under two
minutes.
"""
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from .contract import served_document

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance, unsupported_method]
# FUZZ_EXAMPLES=500 FUZZ_RANDOM=1 searches harder (and differently) by hand.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", 40))

# tus PATCH bodies are raw bytes.
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))
# The IETF draft's appends (interop 7 and later).
schemathesis.openapi.media_type("application/partial-upload", st.binary(max_size=4096))
schema = schemathesis.openapi.from_dict(served_document())


# The fuzzer's WSGI transport does not close streamed file answers (send_file); that leaves
# the file for the garbage collector, and is no fault of the app.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not os.environ.get("FUZZ_RANDOM"),
          suppress_health_check=list(HealthCheck))
def test_no_input_breaks_the_api(case, app):
    case.call_and_validate(app=app, checks=CHECKS)
