"""PDF: real National Assembly documents, scanned pages, encryption, damage."""

from __future__ import annotations

import io

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from tests.extract.helpers import corpus
from tokenclub.errors import ExtractionError
from tokenclub.extract.pdf import read_pdf

BILL = ("samples", "pdf", "national-assembly-bill-2125318-original.pdf")
REPORT = ("samples", "pdf", "national-assembly-bill-2125318-review-report.pdf")


def hangul_syllables(text: str) -> int:
    return sum("가" <= c <= "힣" for c in text)


def test_bill_text_in_page_order() -> None:
    data = corpus(*BILL).read_bytes()
    (doc,) = read_pdf(data, "bill.pdf", "0" * 64)
    assert (doc.format, doc.title, doc.byte_size, doc.metadata) == ("pdf", None, 173_289, {"pages": "10"})
    assert hangul_syllables(doc.text) == 2_677  # the count SOURCES.md gives for this file
    assert doc.text.startswith(
        "- 1 -\n기후위기 대응을 위한 탄소중립ㆍ녹색성장 기본법\n일부개정법률안\n(이수진의원 대표발의)"
    )
    assert "\r" not in doc.text
    pages = [doc.text.index(f"- {n} -") for n in range(1, 5)]
    assert pages == sorted(pages)
    assert "2050 탄소중립녹색성장위원회" in doc.text


def test_review_report_keeps_its_middle_dots() -> None:
    (doc,) = read_pdf(corpus(*REPORT).read_bytes(), "report.pdf", "0" * 64)
    assert doc.metadata == {"pages": "14"}
    assert hangul_syllables(doc.text) == 3_610
    assert doc.text.startswith("제414 국회(임시회)\n제1차 환경노동위원회\n기후위기 대응을 위한")
    assert "검 토 보 고" in doc.text
    assert "탄소중립\u119e녹색성장 기본법" in doc.text  # U+119E as a middle dot, as the HWP export wrote it
    assert "\u318d" in doc.text


def scanned_pdf(pages: int) -> bytes:
    """Pages holding only an image, as a scanner makes them: no text layer at all."""
    pdf = pdfium.PdfDocument.new()
    for _ in range(pages):
        page = pdf.new_page(595, 842)
        bitmap = pdfium.PdfBitmap.new_native(64, 64, pdfium_c.FPDFBitmap_BGR)
        bitmap.fill_rect((128, 128, 128, 255), 0, 0, 64, 64)
        image = pdfium.PdfImage.new(pdf)
        image.set_bitmap(bitmap)
        image.set_matrix(pdfium.PdfMatrix().scale(500, 700))
        page.insert_obj(image)
        page.gen_content()
    out = io.BytesIO()
    pdf.save(out)
    return out.getvalue()


def test_scanned_pdf_is_refused_with_that_reason() -> None:
    data = scanned_pdf(2)
    check = pdfium.PdfDocument(data)
    assert len(check) == 2 and len(list(check[0].get_objects())) == 1
    with pytest.raises(ExtractionError, match=r"^scan.pdf: scanned PDF with no text layer \(2 pages\)$"):
        read_pdf(data, "scan.pdf", "0" * 64)


def encrypted(data: bytes, user_password: str) -> bytes:
    pypdf = pytest.importorskip("pypdf")
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_password_protected_pdf_is_a_clear_failure() -> None:
    data = encrypted(corpus(*BILL).read_bytes(), "secret")
    with pytest.raises(
        ExtractionError, match=r"^bill.pdf: encrypted PDF \(a password is needed to open it\)$"
    ):
        read_pdf(data, "bill.pdf", "0" * 64)


def test_pdf_encrypted_only_against_editing_is_read() -> None:
    data = encrypted(corpus(*BILL).read_bytes(), "")
    (doc,) = read_pdf(data, "bill.pdf", "0" * 64)
    assert hangul_syllables(doc.text) == 2_677


@pytest.mark.parametrize("kind", ["truncated", "garbage", "header only"])
def test_damaged_pdf_is_a_clear_failure(kind: str) -> None:
    data = corpus(*BILL).read_bytes()
    broken = {
        "truncated": data[: len(data) // 2],
        "garbage": b"%PDF-1.7\n" + b"\x00garbage" * 100,
        "header only": b"%PDF-",
    }[kind]
    reason = "corrupt or unreadable PDF (Failed to load document (PDFium: Data format error).)"
    with pytest.raises(ExtractionError) as caught:
        read_pdf(broken, "bad.pdf", "0" * 64)
    assert (caught.value.source, caught.value.reason) == ("bad.pdf", reason)
