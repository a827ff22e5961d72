"""Fixtures shared by the extract tests: the real corpora, and files made by real writers."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import docx
import pytest

from tests.conftest import CORPORA
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure


def corpus(*parts: str) -> Path:
    """A file or folder of the shared corpora; the test is skipped where they are absent."""
    path = CORPORA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


def split(
    items: Iterable[ExtractedDocument | ExtractionFailure],
) -> tuple[list[ExtractedDocument], list[ExtractionFailure]]:
    docs: list[ExtractedDocument] = []
    failures: list[ExtractionFailure] = []
    for item in items:
        if isinstance(item, ExtractionFailure):
            failures.append(item)
        else:
            docs.append(item)
    return docs, failures


def docx_bytes(
    paragraphs: list[str], *, title: str | None = None, table: list[list[str]] | None = None
) -> bytes:
    """A DOCX written by python-docx: the paragraphs, then the table if any, then "끝."."""
    document = docx.Document()
    if title:
        document.core_properties.title = title
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.add_paragraph("끝.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(members: dict[str, bytes], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_bytes(members: dict[str, bytes], *, gzip: bool = False) -> bytes:
    """A tar written by tarfile, gzip-compressed if asked."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if gzip else "w:") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


CONTAINER_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>"""


def epub_bytes(
    chapters: list[tuple[str, str]],
    *,
    title: str = "책",
    spine: list[int] | None = None,
    extra: dict[str, bytes] | None = None,
) -> bytes:
    """An EPUB 3 built per the OCF and Packages specs: `mimetype` first and stored, then
    META-INF/container.xml, the OPF and one XHTML file per (file name, body) chapter.

    `spine` orders chapters by index (default: as given); a nav document is in the manifest
    but not the spine, as EPUB 3 requires.
    """
    order = spine if spine is not None else list(range(len(chapters)))
    manifest = "\n".join(
        f'<item id="c{i}" href="{name}" media-type="application/xhtml+xml"/>'
        for i, (name, _) in enumerate(chapters)
    )
    itemrefs = "\n".join(f'<itemref idref="c{i}"/>' for i in order)
    opf = f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:0b5d8e0c-7a35-4b8e-9a51-2f0f4ad1e0a1</dc:identifier>
    <dc:title>{title}</dc:title>
    <dc:language>ko</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    {manifest}
  </manifest>
  <spine>{itemrefs}</spine>
</package>"""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip", zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", CONTAINER_XML)
        archive.writestr("OEBPS/content.opf", opf)
        archive.writestr("OEBPS/nav.xhtml", xhtml("차례", "<nav><ol><li>목차 항목</li></ol></nav>"))
        for name, body in chapters:
            archive.writestr(f"OEBPS/{name}", xhtml(name, body))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def xhtml(title: str, body: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="ko">
<head><title>{title}</title><style>p {{ margin: 0 }}</style></head>
<body>{body}</body>
</html>""".encode()
