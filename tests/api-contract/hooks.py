"""Checks of the API contract test that schemathesis has no built-in for (loaded through
SCHEMATHESIS_HOOKS by tests/api-contract/run.sh).

Streams (`application/x-ndjson`: logs, deployment events) document the schema of one line;
schemathesis cannot deserialize them, so this check validates every line against it.
"""

import json
import os

import jsonschema
import schemathesis

NDJSON = "application/x-ndjson"

with open(os.environ["FAAS_CONTRACT_OPENAPI"], encoding="utf-8") as f:
    DOCUMENT = json.load(f)


def line_schema(path, method, status):
    operation = DOCUMENT["paths"].get(path, {}).get(method.lower(), {})
    content = operation.get("responses", {}).get(str(status), {}).get("content", {})
    schema = content.get(NDJSON, {}).get("schema")
    if schema is None:
        return None
    return {**schema, "components": DOCUMENT.get("components", {})}


@schemathesis.check
def ndjson_lines_conform(ctx, response, case):
    """Every line of a documented NDJSON stream is JSON of the documented schema."""
    if not response.headers.get("content-type", [""])[0].startswith(NDJSON):
        return None
    schema = line_schema(case.operation.path, case.method, response.status_code)
    if schema is None:
        raise AssertionError(f"{NDJSON} answered with {response.status_code}, which the document does not give as a stream")
    validator = jsonschema.Draft202012Validator(schema)
    for number, line in enumerate(response.content.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise AssertionError(f"line {number} of the stream is not JSON: {e}: {line[:200]!r}")
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        if errors:
            raise AssertionError(f"line {number} does not match its schema: {errors[0].message}: {line[:200]!r}")
    return None
