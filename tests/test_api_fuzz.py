"""schemathesis against the served OpenAPI document: every operation, every role, zero failing checks.

Each generated case is sent once per role (no token, decide, audit, admin); the answer must not
be a 500, and its status, content type, headers and body must be those the document lists. The
suite runs a few cases per operation; the nightly run takes many more:

    ORDERGATE_FUZZ_EXAMPLES=120 ./dev test tests/test_api_fuzz.py -q -s

(120 examples per operation: about 6,000 requests; it prints how many it sent).
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from api import create_app
from api.testing import SHOP, test_config, write_rules

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import checks as common_checks  # noqa: E402
from schemathesis.specs.openapi import checks as openapi_checks  # noqa: E402

EXAMPLES = int(os.environ.get("ORDERGATE_FUZZ_EXAMPLES", "6"))
SECRETS = {"decide": "fuzz-decide-5d1c8e2a", "audit": "fuzz-audit-9f3b7c1e", "admin": "fuzz-admin-2a6e4d9b"}
ROLE_HEADERS = [{}] + [{"Authorization": f"Bearer {secret}"} for secret in SECRETS.values()]
CHECKS = [common_checks.not_a_server_error, openapi_checks.status_code_conformance,
          openapi_checks.content_type_conformance, openapi_checks.response_schema_conformance,
          openapi_checks.response_headers_conformance]


@pytest.mark.slow
def test_every_operation_for_every_role_conforms_to_the_document(tmp_path):
    tokens = {role: [f"fuzz-{role}:{secret}"] for role, secret in SECRETS.items()}
    app = create_app(test_config(f"sqlite:///{tmp_path / 'db.sqlite'}", write_rules(tmp_path / "rules", SHOP),
                                 tokens=tokens))
    failures: list[str] = []
    sent = 0
    try:
        schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 16
        for operation in operations:

            @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy())
            def run(case):
                nonlocal sent
                for headers in ROLE_HEADERS:
                    response = case.call(headers=dict(headers))
                    sent += 1
                    try:
                        case.validate_response(response, checks=CHECKS)
                    except (Exception, BaseExceptionGroup) as exc:  # noqa: B014 - a failure group
                        failures.append(f"{case.operation.label} {headers and 'token' or 'no token'}: {exc}"[:2000])

            run()
    finally:
        app.extensions["ordergate"].close()
    print(f"schemathesis: {sent} requests over {len(operations)} operations and {len(ROLE_HEADERS)} roles")
    assert not failures, "\n\n".join(failures[:5])
