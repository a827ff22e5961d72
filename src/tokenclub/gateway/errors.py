"""Errors in OpenAI's shape, so the official SDKs raise their usual exception types."""

from __future__ import annotations

from fastapi.responses import JSONResponse


def error_response(
    status: int, message: str, type_: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status_code=status,
        headers=headers,
    )


class ApiError(Exception):
    """Raised inside request handling; turned into an OpenAI-style error response."""

    def __init__(
        self, status: int, message: str, type_: str, code: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return error_response(self.status, self.message, self.type, self.code, headers)


def bad_request(message: str, code: str | None = None) -> ApiError:
    return ApiError(400, message, "invalid_request_error", code)
