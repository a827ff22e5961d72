"""Errors in OpenAI's shape, so the official SDKs raise their usual exception types.

Every answer that is not a success has the body `{"error": {message, type, param, code}}`:
the gateway's own refusals and FastAPI's 404/405/422 here; unexpected failures (500, logged
with the request id, never shown to the client) in `observe`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

ECHO_LIMIT = 64
"""Longest client value an error message repeats (a model name, a role)."""
TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "requests",
}


def shorten(value: Any, limit: int = ECHO_LIMIT) -> str:
    """A client-supplied value as an error message may quote it: repr'd and cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_response(
    status: int,
    message: str,
    type_: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


class ApiError(Exception):
    """Raised inside request handling; turned into an OpenAI-style error response."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        retry_after: int | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.retry_after = retry_after
        self.param = param
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def response(self) -> JSONResponse:
        return error_response(
            self.status, self.message, self.type, self.code, self.headers or None, self.param
        )


def bad_request(message: str, code: str | None = None, param: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code, param=param)


INVALID_KEY = ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"unknown route: {request.method} {shorten(request.url.path)}"
        code = "unknown_url"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {shorten(request.url.path)}"
        code = "method_not_allowed"
    else:
        message, code = shorten(exc.detail, 200), None
    type_ = TYPES.get(exc.status_code, "server_error")
    return error_response(exc.status_code, message, type_, code, dict(exc.headers or {}) or None)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = f"{where or 'request'}: {first.get('msg', 'invalid value')}"
    return error_response(400, shorten(message, 200), "invalid_request_error", "invalid_value", None, where)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app can answer, in OpenAI's shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
