"""A partner's statements as downloads, rendered by the settlement's own exporters."""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response
from sqlalchemy.orm import Session

from tokenclub.settlement.export import to_csv, to_html, to_pdf
from tokenclub.settlement.statement import build_statement

MEDIA = {"csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8", "pdf": "application/pdf"}


def statement_dict(session: Session, partner_id: int, period: str) -> dict[str, Any]:
    return {"object": "statement", **build_statement(session, partner_id, period).as_dict()}


def statement_file(session: Session, partner_id: int, period: str, fmt: str) -> Response:
    """The statement as CSV (with a BOM for spreadsheets), HTML or PDF, as an attachment."""
    statement = build_statement(session, partner_id, period)
    if fmt == "pdf":
        body = to_pdf(statement)
    elif fmt == "csv":
        body = to_csv(statement).encode("utf-8-sig")
    else:
        body = to_html(statement).encode("utf-8")
    name = f"statement-{partner_id}-{period}.{fmt}"
    return Response(
        body, media_type=MEDIA[fmt], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
