"""Statements: a partner's own figures only, exported as CSV, HTML and PDF."""

from __future__ import annotations

import csv
import io

import pytest
from pypdf import PdfReader

from tests.settlement.fixtures import LATER, OCT_15, TERMS, approved_partner, credit, free_usage, october
from tokenclub.db.engine import Database
from tokenclub.errors import StateError
from tokenclub.settlement import export
from tokenclub.settlement.periods import RecordKind, add_record
from tokenclub.settlement.settle import close_period
from tokenclub.settlement.statement import Statement, build_statement


@pytest.fixture
def closed(db: Database) -> dict[str, int]:
    ids = october(db)
    with db.transaction() as session:
        free_usage(session, ids["나래"], 123_456, 7_890, OCT_15, "r1")
        ids["outsider"] = approved_partner(session, "outsider")
        close_period(session, "2026-10", TERMS, now=LATER)
    return ids


def _statement(db: Database, partner: int) -> Statement:
    with db.transaction() as session:
        return build_statement(session, partner, "2026-10")


def test_a_statement_shows_the_pool_the_share_the_payout_and_free_usage(
    db: Database, closed: dict[str, int]
) -> None:
    data = _statement(db, closed["나래"]).as_dict()
    assert data | {"closed_at": None, "records": None} == {
        "partner": closed["나래"],
        "partner_name": "나래",
        "period": "2026-10",
        "starts_at": "2026-10-01T00:00:00+00:00",
        "ends_at": "2026-11-01T00:00:00+00:00",
        "closed_at": None,
        "api_revenue_krw": 700_000,
        "manual_revenue_krw": 300_001,
        "revenue_krw": 1_000_001,
        "cost_krw": 100_003,
        "profit_krw": 899_998,
        "pool_rate": "0.3",
        "pool_basis": "profit",
        "pool_krw": 269_999,
        "policy": "credited_tokens",
        "total_tokens": 3_000,
        "tokens": 1_000,
        "share": "1/3",
        "allocated_krw": 90_000,
        "carried_in_krw": 0,
        "due_krw": 90_000,
        "min_payout_krw": 1_000,
        "paid_krw": 90_000,
        "carried_out_krw": 0,
        "ledger_key": f"profit_share:2026-10:{closed['나래']}",
        "free_prompt_tokens": 123_456,
        "free_completion_tokens": 7_890,
        "price_input_krw_per_mtok": 2_000,
        "price_output_krw_per_mtok": 8_000,
        "free_usage_krw": 310,
        "trained_models": "",
        "records": None,
    }
    assert [(r["kind"], r["krw"], r["note"]) for r in data["records"]] == [  # type: ignore[attr-defined]
        ("revenue", 300_001, "enterprise contract"),
        ("cost", 100_003, "GPU rental"),
    ]
    outsider = _statement(db, closed["outsider"])
    assert (outsider.tokens, outsider.allocated_krw, outsider.paid_krw, outsider.ledger_key) == (
        0,
        0,
        0,
        None,
    )


def test_exports_carry_only_the_partners_own_figures(db: Database, closed: dict[str, int]) -> None:
    statement = _statement(db, closed["나래"])
    rows = list(csv.reader(io.StringIO(export.to_csv(statement))))
    assert rows[0] == ["field", "value", "note"]
    fields = {row[0]: row[1] for row in rows[1:]}
    assert (fields["partner_name"], fields["paid_krw"], fields["share"]) == ("나래", "90000", "1/3")
    assert rows[-2:] == [
        ["record:revenue", "300001", "enterprise contract"],
        ["record:cost", "100003", "GPU rental"],
    ]
    page = export.to_html(statement)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="ko">' in page
    for text in ("나래", "269,999 KRW", "90,000 KRW", "1,000 / 3,000", "310 KRW", "profit_share:2026-10:"):
        assert text in page
    pdf = export.to_pdf(statement)
    assert pdf.startswith(b"%PDF") and export.to_pdf(statement) == pdf
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    for needle in ("나래", "수익 배분 명세서", "269,999 KRW", "90,000 KRW", "310 KRW"):
        assert needle in text
    for other in ("가람", "다솜", "89,999"):
        assert other not in page and other not in text and other not in export.to_csv(statement)


def _fonts(pdf: bytes) -> dict[str, bool]:
    """Base font name → whether the PDF embeds its glyphs (the standard 14 fonts, which the
    page set-up names and no Korean text uses, left out)."""
    found: dict[str, bool] = {}
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for ref in page["/Resources"]["/Font"].values():  # type: ignore[index]
            font = ref.get_object()
            described = font["/DescendantFonts"][0].get_object() if "/DescendantFonts" in font else font
            if "/FontDescriptor" not in described:
                continue
            descriptor = described["/FontDescriptor"].get_object()
            found[str(font["/BaseFont"])] = any(
                k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
    return found


def test_the_pdf_embeds_a_korean_font_when_one_is_installed(db: Database, closed: dict[str, int]) -> None:
    if not any(path.is_file() for path in export.KOREAN_TTF):
        pytest.skip("no Korean TrueType font installed (Debian: fonts-nanum)")
    fonts = _fonts(export.to_pdf(_statement(db, closed["나래"])))
    assert fonts and all(fonts.values())


def test_without_a_korean_font_the_pdf_names_the_cid_fallback(
    db: Database, closed: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "KOREAN_TTF", ())
    pdf = export.to_pdf(_statement(db, closed["나래"]))
    assert _fonts(pdf) == {f"/{export.CID_FALLBACK}": False}


def test_statements_wait_for_the_close(db: Database) -> None:
    with db.transaction() as session:
        partner = approved_partner(session, "p")
        credit(session, partner, 10, OCT_15)
        add_record(session, "2026-10", RecordKind.REVENUE, 1, "r")
        with pytest.raises(StateError, match="open"):
            build_statement(session, partner, "2026-10")
