"""API errors: every one reaches the client as ``{"error": "...", "code": "..."}``."""

from __future__ import annotations

import json
from typing import Any

# HTTP status -> the code used when nothing more precise is known (framework errors).
DEFAULT_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine code, and a message a person can act on."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code}


def error_response(description: str) -> dict[str, Any]:
    """An OpenAPI response entry for errors: always JSON, also on routes that stream video or
    events (a ``model=`` entry would take those routes' media type)."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }


def error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "code": code}).encode("utf-8")
