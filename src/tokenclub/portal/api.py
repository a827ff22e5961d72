"""The data API: uploads (a mirror of OpenAI's Uploads API), contributions, account, statements.

JSON over HTTP in the gateway's style: errors in OpenAI's shape, and every response carries an
`x-request-id`. A key needs the `data` scope for uploads and contributions and the `account`
scope for the balance and statements; it only ever sees its own partner's objects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy import select

from tokenclub.accounts.keys import Scope, authenticate
from tokenclub.db.portal_schema import DataUpload, UploadPart
from tokenclub.db.schema import Customer
from tokenclub.errors import InvalidInputError, NotFoundError, StateError, TokenclubError
from tokenclub.gateway.errors import ApiError
from tokenclub.portal import partner_data, statements, uploads
from tokenclub.portal.state import PortalState, portal_state
from tokenclub.portal.streaming import receive

REQUEST_ID = "x-request-id"


def api_error(exc: TokenclubError) -> ApiError:
    """The project's errors as HTTP: missing 404, bad input 400, wrong state 409."""
    if isinstance(exc, NotFoundError):
        return ApiError(404, str(exc), "invalid_request_error", "not_found")
    if isinstance(exc, InvalidInputError):
        return ApiError(400, str(exc), "invalid_request_error", "invalid_value")
    if isinstance(exc, StateError):
        return ApiError(409, str(exc), "invalid_request_error", "conflict")
    return ApiError(400, str(exc), "invalid_request_error")


class RequestIdRoute(APIRoute):
    """Tags every response, errors included, with a request id; turns known errors into JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def tagged(request: Request) -> Response:
            request_id = f"req_{uuid.uuid4().hex}"
            request.state.request_id = request_id
            try:
                response = await handler(request)
            except TokenclubError as exc:
                response = api_error(exc).response()
            except ApiError as exc:
                response = exc.response()
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
                where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
                response = ApiError(
                    400, f"{where}: {first.get('msg')}", "invalid_request_error", "invalid_value"
                ).response()
            response.headers[REQUEST_ID] = request_id
            return response

        return tagged


router = APIRouter(route_class=RequestIdRoute)


def _partner_of(state: PortalState, request: Request, scope: Scope) -> int:
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise ApiError(
            401,
            "missing API key: send Authorization: Bearer <key>",
            "invalid_request_error",
            "invalid_api_key",
        )
    with state.db.transaction() as session:
        key = authenticate(session, secret.strip())
        if key is None:
            raise ApiError(401, "invalid or revoked API key", "invalid_request_error", "invalid_api_key")
        if not key.allows(scope):
            raise ApiError(
                403, f"this API key has no {scope.value} scope", "invalid_request_error", "insufficient_scope"
            )
        partner_id = session.scalar(select(Customer.partner_id).where(Customer.id == key.customer_id))
    if partner_id is None:
        raise ApiError(403, "the data API is for partners' keys", "invalid_request_error", "not_a_partner")
    return partner_id


def upload_object(upload: DataUpload, contribution_id: str | None = None) -> dict[str, Any]:
    file = None
    if contribution_id is not None:
        file = {
            "id": contribution_id,
            "object": "file",
            "bytes": upload.bytes,
            "created_at": int(upload.created_at.timestamp()),
            "filename": upload.filename,
            "purpose": upload.purpose,
            "status": "uploaded",
        }
    return {
        "id": upload.id,
        "object": "upload",
        "bytes": upload.bytes,
        "created_at": int(upload.created_at.timestamp()),
        "expires_at": int(upload.expires_at.timestamp()),
        "filename": upload.filename,
        "purpose": upload.purpose,
        "status": upload.status,
        "file": file,
    }


def part_object(part: UploadPart) -> dict[str, Any]:
    return {
        "id": part.id,
        "object": "upload.part",
        "created_at": int(part.created_at.timestamp()),
        "upload_id": part.upload_id,
        "bytes": part.bytes,
        "sha256": part.sha256,
    }


class CreateUpload(BaseModel):
    bytes: int
    filename: str
    mime_type: str = "application/octet-stream"
    purpose: str = "user_data"


class CompleteUpload(BaseModel):
    part_ids: list[str] = Field(default_factory=list)
    md5: str | None = None


@router.post("/v1/uploads")
def create_upload(body: CreateUpload, request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    with state.db.transaction() as session:
        upload = uploads.create_upload(
            session,
            partner_id,
            filename=body.filename,
            purpose=body.purpose,
            size=body.bytes,
            mime_type=body.mime_type,
            limits=state.limits,
        )
    return upload_object(upload)


@router.get("/v1/uploads/{upload_id}")
def get_upload(upload_id: str, request: Request) -> dict[str, Any]:
    """The upload and the parts received so far (not in OpenAI's API): a client resumes from it."""
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    with state.db.transaction() as session:
        upload, parts = uploads.parts_of(session, upload_id, partner_id)
        return {
            **upload_object(upload),
            "received_bytes": upload.received_bytes,
            "parts": [part_object(p) for p in parts],
        }


@router.post("/v1/uploads/{upload_id}/parts")
async def add_part(upload_id: str, request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = await run_in_threadpool(_partner_of, state, request, Scope.DATA)
    return await receive_part(state, request, upload_id, partner_id)


async def receive_part(
    state: PortalState, request: Request, upload_id: str, partner_id: int
) -> dict[str, Any]:
    """Stream one part of a request into the upload's staging folder (shared with the portal)."""
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit():
        overhead = 64 * 1024  # multipart framing and small fields
        if int(announced) > state.limits.max_part_bytes + overhead:
            raise InvalidInputError(
                f"part of upload {upload_id} is {int(announced):,} bytes; the part limit is "
                f"{state.limits.max_part_bytes:,}"
            )
    sink = await run_in_threadpool(
        uploads.begin_part, state.db, state.home, upload_id, partner_id, state.limits, state.sealing
    )
    try:
        fields = await receive(request.headers.get("content-type", ""), request.stream(), sink)
    except BaseException:
        sink.abort()
        raise
    expected = fields.get("sha256") or request.headers.get("x-part-sha256")
    part = await run_in_threadpool(uploads.finish_part, state.db, sink, partner_id, expected)
    return part_object(part)


@router.post("/v1/uploads/{upload_id}/complete")
def complete_upload(upload_id: str, body: CompleteUpload, request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    upload, contribution = uploads.complete(
        state.db, state.home, upload_id, partner_id, body.part_ids, body.md5, state.sealing
    )
    return upload_object(upload, contribution.id)


@router.post("/v1/uploads/{upload_id}/cancel")
def cancel_upload(upload_id: str, request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    return upload_object(uploads.cancel(state.db, state.home, upload_id, partner_id))


@router.get("/v1/contributions")
def list_contributions(
    request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None
) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    with state.db.transaction() as session:
        data, more = partner_data.list_contributions(session, partner_id, limit=limit, before=after)
    return {
        "object": "list",
        "data": data,
        "has_more": more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/v1/contributions/{contribution_id}")
def get_contribution(contribution_id: str, request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    with state.db.transaction() as session:
        return partner_data.get_contribution(session, partner_id, contribution_id)


@router.get("/v1/contributions/{contribution_id}/decisions")
def get_decisions(
    contribution_id: str,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    after: int | None = Query(None, ge=-1),
    rejected: bool = False,
) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.DATA)
    with state.db.transaction() as session:
        return partner_data.decisions(
            session, partner_id, contribution_id, after=after, limit=limit, rejected_only=rejected
        )


@router.get("/v1/account")
def get_account(request: Request) -> dict[str, Any]:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.ACCOUNT)
    with state.db.transaction() as session:
        return partner_data.account(session, partner_id)


@router.get("/v1/statements")
def list_statements(request: Request) -> dict[str, Any]:
    state = portal_state(request)
    _partner_of(state, request, Scope.ACCOUNT)
    with state.db.transaction() as session:
        return {"object": "list", "data": partner_data.closed_periods(session)}


@router.get("/v1/statements/{period}")
def get_statement(
    period: str, request: Request, format: str = Query("json", pattern="^(json|csv|html|pdf)$")
) -> Response:
    state = portal_state(request)
    partner_id = _partner_of(state, request, Scope.ACCOUNT)
    with state.db.transaction() as session:
        if format == "json":
            return JSONResponse(statements.statement_dict(session, partner_id, period))
        return statements.statement_file(session, partner_id, period, format)
