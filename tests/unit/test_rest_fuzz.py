"""Fuzzing the REST API against its own document (docs/openapi.yaml) with schemathesis: valid and
invalid requests for every operation, in process against the WSGI app and the REST tests'
harness (no network). No answer may be a 5xx, and every answer must be one the document
describes: its status, content type and schema. Time-boxed by the number of examples."""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.rest.api import OPENAPI_PATH
from tests.unit.test_rest_harness import ADMIN_TOKEN, BLUE_TOKEN, Harness

pytestmark = pytest.mark.fuzz
# Per operation, mode and token: about a minute in all. Raise it for a deeper run.
EXAMPLES = int(os.environ.get("EVB_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _cases() -> list[tuple[str, str, GenerationMode, str]]:
    """(method, path, mode, token): valid requests as admin and as a tenant, invalid ones as
    admin where the operation takes anything to get wrong (parameters or a body)."""
    cases = []
    for result in schemathesis.openapi.from_path(OPENAPI_PATH).get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        cases += [(*key, GenerationMode.POSITIVE, ADMIN_TOKEN)]
        cases += [(*key, GenerationMode.POSITIVE, BLUE_TOKEN)]
        takes = operation.path_parameters or operation.query or operation.body
        cases += [(*key, GenerationMode.NEGATIVE, ADMIN_TOKEN)] if takes else []
    return sorted(cases)


@pytest.mark.parametrize("method, path, mode, token", _cases())
def test_every_operation_answers_as_documented(tmp_path, method, path, mode, token):
    harness = Harness(str(tmp_path / "evb.db"))
    operation = schemathesis.openapi.from_wsgi("/v1/openapi.yaml", harness.api.wsgi)[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    try:
        fuzz()
    finally:
        harness.close()
