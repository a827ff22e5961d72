"""Word documents (DOCX) with python-docx: body paragraphs and tables in the order they appear.

Tables hold much of the text of Korean reports and notices, so they are read cell by cell
in place rather than dropped or appended at the end. Headers and footers are left out:
they repeat on every page and are boilerplate, not contribution.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import docx
from docx.table import Table, _Cell
from docx.text.paragraph import Paragraph

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.text import to_nfc


def read_docx(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """One document: paragraphs one per line; a table row's cells joined by tabs."""
    try:
        document = docx.Document(io.BytesIO(data))
        text = "\n".join(_blocks(document.iter_inner_content()))
        title = document.core_properties.title
    except Exception as err:
        # python-docx reports damaged packages with whatever its zip and XML layers raise
        # (KeyError for a missing part, ValueError, lxml errors …); all mean the file.
        raise ExtractionError(source, f"corrupt or unreadable DOCX ({type(err).__name__}: {err})") from None
    return [
        ExtractedDocument(
            source=source,
            format="docx",
            text=to_nfc(text),
            title=to_nfc(title.strip()) if title and title.strip() else None,
            byte_size=len(data),
            sha256=sha256,
        )
    ]


def _blocks(content: Iterator[Paragraph | Table]) -> Iterator[str]:
    for block in content:
        if isinstance(block, Paragraph):
            yield block.text
        else:
            yield from _table_rows(block)


def _table_rows(table: Table) -> Iterator[str]:
    # python-docx returns a merged cell once for every grid position it covers; the set
    # holds the cell elements themselves (not their ids) so each is read once.
    seen: set[object] = set()
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            if cell._tc not in seen:
                seen.add(cell._tc)
                cells.append(_cell_text(cell))
        yield "\t".join(cells)


def _cell_text(cell: _Cell) -> str:
    """A cell's paragraphs and nested tables on one line, so that a row stays one line."""
    return " ".join(word for line in _blocks(cell.iter_inner_content()) for word in line.split())
