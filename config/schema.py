"""OpenAPI schema post-processing: every operation documents the error answers the API's
conventions (API.md, "Conventions") make possible, with their bodies.

Views document their own success responses and the errors particular to them (409 for a state
conflict, 403 where a role is refused). The answers every endpoint shares follow from its shape,
so they are added here rather than repeated on each view; the schema then tells clients, and
the fuzz test (tests/test_fuzz_api.py) holds the API to, the truth:
- 400 with field errors wherever input is read (a request body, query or header parameters);
- 401 and 403 on every operation that needs a signed-in caller (403 also for a session without
  its CSRF token);
- 404 on every path with an id in it (outside the caller's scope, or no such object) and on
  every paginated list (a page past the end).
Error bodies are JSON (config.api.exception_handler, and config.api.not_found for a path no
view matches); a response a view documents with its own content (the gateways' plain-text
acknowledgements) keeps it.
"""

ERROR_SCHEMA = {
    "type": "object",
    "description": "A refusal with its reason.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "Field errors: each field (or `detail`, `non_field_errors`) with its messages.",
    "additionalProperties": {},
}
DESCRIPTIONS = {
    "400": "Bad input, with field errors.",
    "401": "Not signed in.",
    "403": "Signed in, but not allowed.",
    "404": "Not in the caller's scope, or no such object.",
}


def _json(schema_name: str) -> dict:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}}


def _needs_sign_in(operation: dict) -> bool:
    return {} not in operation.get("security", [{}])


def _expected_errors(operation: dict) -> list[str]:
    parameters = operation.get("parameters", [])
    codes = []
    if "requestBody" in operation or any(p["in"] in ("query", "header") for p in parameters):
        codes.append("400")
    if _needs_sign_in(operation):
        codes += ["401", "403"]
    if any(_names_a_row(p) for p in parameters):
        codes.append("404")
    return codes


def _names_a_row(parameter: dict) -> bool:
    """An id in the path, or the page of a paginated list: either may name nothing there."""
    if parameter["in"] == "path":
        return parameter.get("schema", {}).get("type") == "integer"
    return parameter["in"] == "query" and parameter["name"] == "page"


def document_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOK: add the shared error answers to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    schemas.setdefault("ValidationError", VALIDATION_ERROR_SCHEMA)
    for methods in result.get("paths", {}).values():
        for operation in methods.values():
            responses = operation["responses"]
            for code in _expected_errors(operation):
                responses.setdefault(code, {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    response["content"] = _json("ValidationError" if code == "400" else "Error")
    return result
