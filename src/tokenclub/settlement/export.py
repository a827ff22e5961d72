"""Statement exports: CSV for spreadsheets, a printable HTML page, and PDF.

HTML and PDF lay out the same sections (`sections`), labelled in Korean and English; the CSV
carries the statement's machine field names. The PDF is built with ReportLab (BSD) and
embeds a Korean TrueType font when the machine has one (Debian `fonts-nanum`, OFL); without
one it falls back to ReportLab's built-in Korean CID font, which the PDF names but does not
embed, so the reader's viewer supplies the glyphs.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from tokenclub.errors import StateError
from tokenclub.settlement.statement import Statement

KOREAN_TTF = (
    Path("/usr/share/fonts/truetype/nanum/NanumGothic.ttf"),
    Path("/usr/share/fonts/truetype/baekmuk/gulim.ttf"),
    Path("/Library/Fonts/NanumGothic.ttf"),
    Path("/System/Library/Fonts/Supplemental/AppleGothic.ttf"),
    Path("C:/Windows/Fonts/malgun.ttf"),
)
"""Korean TrueType fonts looked for, in order; ReportLab cannot embed CFF (.otf) outlines."""
CID_FALLBACK = "HYGothic-Medium"

TITLE = "수익 배분 명세서 · Profit-share statement"
Section = tuple[str, list[tuple[str, str]]]


def _krw(amount: int) -> str:
    return f"{amount:,} KRW"


def _moment(statement: Statement) -> str:
    return (
        f"{statement.starts_at:%Y-%m-%d %H:%M} ≤ t < {statement.ends_at:%Y-%m-%d %H:%M} UTC"
        f" (closed {statement.closed_at:%Y-%m-%d %H:%M} UTC)"
    )


_BASIS = {
    "profit": "이익의 일정 비율 · share of profit (revenue - costs)",
    "revenue": "매출의 일정 비율 · share of revenue (costs not deducted)",
}


def _base(s: Statement) -> int:
    """What the pool rate was applied to, as the period froze it."""
    return s.profit_krw if s.pool_basis == "profit" else s.revenue_krw


def sections(s: Statement) -> list[Section]:
    """The statement for people: every figure with the rule that produced it."""
    share = s.share
    records = [
        (f"{'매출 · revenue' if r.kind == 'revenue' else '비용 · cost'}: {r.note or '-'}", _krw(r.krw))
        for r in s.records
    ]
    return [
        (
            "기본 정보 · Statement",
            [
                ("파트너 · Partner", f"{s.partner_name} (#{s.partner_id})"),
                ("정산 기간 · Period", f"{s.period}: {_moment(s)}"),
            ],
        ),
        (
            "배분 풀 · How the pool was computed",
            [
                ("API 매출 · API revenue (paid usage, ledger)", _krw(s.api_revenue_krw)),
                ("기타 매출 · Other revenue (operator records)", _krw(s.manual_revenue_krw)),
                ("비용 · Costs (operator records)", _krw(s.cost_krw)),
                ("이익 · Profit = revenue - costs", _krw(s.profit_krw)),
                ("배분율 · Pool rate", s.pool_rate),
                ("배분 기준 · Pool basis", _BASIS[s.pool_basis]),
                (
                    f"배분 풀 · Pool = rate × max(0, {s.pool_basis}), rounded down",
                    f"{s.pool_rate} × {max(0, _base(s)):,} → {_krw(s.pool_krw)}",
                ),
                *records,
            ],
        ),
        (
            "귀사 지분 · Your share",
            [
                ("가중치 정책 · Weight policy", s.policy),
                ("귀사 토큰 · Your credited tokens at period end", f"{s.tokens:,}"),
                ("전체 토큰 · All partners' tokens", f"{s.total_tokens:,}"),
                ("지분 · Share", f"{s.tokens:,} / {s.total_tokens:,} = {float(share) * 100:.6f}%"),
                ("배분액 · Allocated (largest remainder, to the won)", _krw(s.allocated_krw)),
            ],
        ),
        (
            "지급 · Payout",
            [
                ("이전 이월 · Carried in from earlier periods", _krw(s.carried_in_krw)),
                ("지급 대상 · Due = allocated + carried in", _krw(s.due_krw)),
                ("최소 지급액 · Minimum payout", _krw(s.min_payout_krw)),
                ("지급액 · Paid (credited to your payable account)", _krw(s.paid_krw)),
                ("다음 기간 이월 · Carried to the next period", _krw(s.carried_out_krw)),
                ("원장 키 · Ledger key", s.ledger_key or "-"),
            ],
        ),
        (
            "무상 API 사용 · Free API usage received",
            [
                ("무상 입력 토큰 · Free input tokens", f"{s.free_prompt_tokens:,}"),
                ("무상 출력 토큰 · Free output tokens", f"{s.free_completion_tokens:,}"),
                (
                    "정가 · List price per 1M tokens (input / output)",
                    f"{_krw(s.prices.input_krw_per_mtok)} / {_krw(s.prices.output_krw_per_mtok)}",
                ),
                ("정가 환산액 · Value at list price", _krw(s.free_usage_krw)),
            ],
        ),
    ]


def to_csv(statement: Statement) -> str:
    """`field,value,note` rows: the statement's fields, then one row per operator record."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["field", "value", "note"])
    for name, value in statement.as_dict().items():
        if name != "records":
            writer.writerow([name, "" if value is None else value, ""])
    for record in statement.records:
        writer.writerow([f"record:{record.kind}", record.krw, record.note])
    return out.getvalue()


HTML_STYLE = """
body { font-family: "Noto Sans KR", "NanumGothic", "Malgun Gothic", "Apple SD Gothic Neo", sans-serif;
       margin: 2rem auto; max-width: 52rem; color: #111; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.05rem; margin-top: 1.6rem; border-bottom: 1px solid #999; }
table { border-collapse: collapse; width: 100%; }
td { padding: 0.25rem 0.4rem; vertical-align: top; border-bottom: 1px solid #e3e3e3; }
td.value { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
@page { size: A4; margin: 18mm; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; }
               table { break-inside: avoid; } }
"""


def to_html(statement: Statement) -> str:
    """A self-contained page (no scripts, no external assets) that prints on A4."""
    parts = [
        '<!DOCTYPE html>\n<html lang="ko">\n<head>\n<meta charset="utf-8">',
        f"<title>{html.escape(TITLE)} {html.escape(statement.period)}</title>",
        f"<style>{HTML_STYLE}</style>\n</head>\n<body>",
        f"<h1>{html.escape(TITLE)}</h1>",
    ]
    for title, rows in sections(statement):
        parts.append(f"<h2>{html.escape(title)}</h2>\n<table>")
        parts.extend(
            f'<tr><td>{html.escape(label)}</td><td class="value">{html.escape(value)}</td></tr>'
            for label, value in rows
        )
        parts.append("</table>")
    parts.append("</body>\n</html>\n")
    return "\n".join(parts)


def _font() -> str:
    """Register and name the PDF font: an embedded Korean TrueType font, else the CID fallback."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    for path in KOREAN_TTF:
        if path.is_file():
            name = f"tokenclub-{path.stem}"
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(path)))
            return name
    pdfmetrics.registerFont(UnicodeCIDFont(CID_FALLBACK))
    return CID_FALLBACK


def to_pdf(statement: Statement) -> bytes:
    """The same page as the HTML, as an A4 PDF; byte-identical for the same statement."""
    try:
        from reportlab.lib import colors
    except ImportError as exc:
        raise StateError("PDF export needs ReportLab: pip install 'tokenclub[pdf]'") from exc
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = _font()
    title_style = ParagraphStyle("title", fontName=font, fontSize=15, leading=20, spaceAfter=4 * mm)
    heading = ParagraphStyle("heading", fontName=font, fontSize=11, leading=15, spaceBefore=4 * mm)
    cell = ParagraphStyle("cell", fontName=font, fontSize=8.5, leading=11)
    value = ParagraphStyle("value", parent=cell, alignment=2)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{TITLE} {statement.period}",
        author="tokenclub",
        lang="ko",
        invariant=1,
        initialFontName=font,
    )
    story: list[Flowable] = [Paragraph(html.escape(TITLE), title_style)]
    width = doc.width
    for title, rows in sections(statement):
        story.append(Paragraph(html.escape(title), heading))
        table = Table(
            [[Paragraph(html.escape(label), cell), Paragraph(html.escape(v), value)] for label, v in rows],
            colWidths=[width * 0.55, width * 0.45],
        )
        table.setStyle(
            TableStyle(
                [
                    ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        story.extend([table, Spacer(1, 2 * mm)])
    doc.build(story)
    return buffer.getvalue()
