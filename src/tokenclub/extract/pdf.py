"""PDF text layers, page by page, with pypdfium2 (Apache/BSD; PyMuPDF is AGPL).

Only the text layer is read: a scanned PDF has none and is refused with that reason, since
OCR output would need its own quality checks before anyone is credited for it.
"""

from __future__ import annotations

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.text import to_nfc


def read_pdf(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """One document: the text of every page in content order, pages separated by a blank line."""
    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as err:
        if err.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise ExtractionError(source, "encrypted PDF (a password is needed to open it)") from None
        raise ExtractionError(source, f"corrupt or unreadable PDF ({err})") from None
    try:
        pages = [_page_text(pdf, index) for index in range(len(pdf))]
        title = pdf.get_metadata_dict(skip_empty=True).get("Title")
    except pdfium.PdfiumError as err:
        raise ExtractionError(source, f"corrupt or unreadable PDF ({err})") from None
    finally:
        pdf.close()
    if not pages:
        raise ExtractionError(source, "PDF has no pages")
    if not any(page.strip() for page in pages):
        raise ExtractionError(source, f"scanned PDF with no text layer ({len(pages)} pages)")
    return [
        ExtractedDocument(
            source=source,
            format="pdf",
            text=to_nfc("\n\n".join(page.strip() for page in pages)),
            title=to_nfc(title.strip()) if title and title.strip() else None,
            byte_size=len(data),
            sha256=sha256,
            metadata={"pages": str(len(pages))},
        )
    ]


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            text: str = textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n")  # pdfium ends every line with CRLF
