"""HWPX: the text of Hancom's XML word-processor documents (OWPML, KS X 6101).

An HWPX file is a zip package: `Contents/section{n}.xml` hold the body, one `hs:sec` each,
`Contents/content.hpf` (an OPF package file) lists the parts and holds the metadata, and
`META-INF/manifest.xml` describes encryption. OWPML names its body parts section0, section1,
… in reading order, so the reader finds them by name and still reads packages whose
manifest is missing or broken.

Paragraphs (`hp:p`) carry their characters in `hp:t` runs; tables, text boxes, headers and
notes nest further `hp:p` inside a run. Each paragraph becomes one line, followed by the lines
of the paragraphs nested in it, the same order the HWP reader gives.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator

from lxml import etree

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument

_HP = "{http://www.hancom.co.kr/hwpml/2011/paragraph}"
_P = f"{_HP}p"
_T = f"{_HP}t"
_INLINE_TEXT = {
    f"{_HP}tab": "\t",
    f"{_HP}lineBreak": "\n",
    f"{_HP}hyphen": "-",
    f"{_HP}nbSpace": " ",
    f"{_HP}fwSpace": " ",
}
"""What the empty elements inside `hp:t` stand for; the others (mark-pen, change-tracking and
title marks) only delimit ranges and add no text."""

_SECTION = re.compile(r"Contents/section(\d+)\.xml")
_PACKAGE_FILE = "Contents/content.hpf"
_MANIFEST = "META-INF/manifest.xml"

MAX_PART_BYTES = 256 * 1024 * 1024
"""An XML part that inflates beyond this is refused as a decompression bomb."""


class _FormatError(Exception):
    """A malformed package; becomes an ExtractionError naming the file."""


def _detail(exc: BaseException) -> str:
    """A library's message on one line, as ExtractionError reasons must be."""
    return " ".join(str(exc).split())


def read_hwpx(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """Read an HWPX package into one document, or raise ExtractionError with the reason."""
    try:
        with _open(data) as package:
            if _encrypted(package):
                raise _FormatError("password-protected HWPX document")
            lines: list[str] = []
            for name in _sections(package.namelist()):
                lines.extend(_paragraph_lines(_parse(_read(package, name), name)))
            title = _title(package)
    except _FormatError as exc:
        raise ExtractionError(source, str(exc)) from exc
    text = unicodedata.normalize("NFC", "\n".join(lines).strip())
    return [
        ExtractedDocument(
            source=source,
            format="hwpx",
            text=text,
            title=title,
            byte_size=len(data),
            sha256=sha256,
        )
    ]


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # zipfile raises many types on damaged archives
        raise _FormatError(f"not an HWPX package (corrupt zip: {_detail(exc)})") from exc


def _read(package: zipfile.ZipFile, name: str) -> bytes:
    try:
        with package.open(name) as member:
            blob = member.read(MAX_PART_BYTES + 1)
    except Exception as exc:  # zipfile raises many types on damaged members
        raise _FormatError(f"unreadable package part {name} ({_detail(exc)})") from exc
    if len(blob) > MAX_PART_BYTES:
        raise _FormatError(f"package part {name} inflates beyond {MAX_PART_BYTES >> 20} MiB")
    return blob


def _encrypted(package: zipfile.ZipFile) -> bool:
    """Whether the manifest lists encrypted parts (ODF-style `encryption-data` entries).

    A missing or damaged manifest says nothing either way: the sections are then read, and encrypted
    ones fail as malformed XML.
    """
    try:
        return b"encryption-data" in _read(package, _MANIFEST)
    except _FormatError:
        return False


def _sections(names: list[str]) -> list[str]:
    """The body parts in numeric order (section10 after section9)."""
    numbered = sorted((int(match[1]), name) for name in names if (match := _SECTION.fullmatch(name)))
    if not numbered:
        raise _FormatError("not an HWPX package (no Contents/section*.xml)")
    return [name for _, name in numbered]


def _parse(blob: bytes, name: str) -> etree._Element:
    # Uploads are untrusted: no external or expanded entities, no network, lxml's size limits.
    # A parser per call, as lxml parsers must not be shared between threads.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(blob, parser)
    except (etree.LxmlError, ValueError) as exc:
        raise _FormatError(f"malformed XML in {name} ({_detail(exc)})") from exc


def _paragraph_lines(section: etree._Element) -> Iterator[str]:
    """One line per paragraph that has text runs, in document order, nested paragraphs after."""
    for paragraph in section.iter(_P):
        runs = [t for t in paragraph.iter(_T) if next(t.iterancestors(_P)) is paragraph]
        if runs:
            yield "".join(_run_text(t) for t in runs)


def _run_text(run: etree._Element) -> str:
    parts = [run.text or ""]
    for child in run:
        if isinstance(child.tag, str):
            parts.append(_INLINE_TEXT.get(child.tag, ""))
        parts.append(child.tail or "")
    return "".join(parts)


def _title(package: zipfile.ZipFile) -> str | None:
    """The `opf:title` of the package metadata; a missing or damaged package file costs only the title."""
    try:
        root = _parse(_read(package, _PACKAGE_FILE), _PACKAGE_FILE)
    except _FormatError:
        return None
    title = root.findtext("{*}metadata/{*}title")
    return unicodedata.normalize("NFC", title.strip()) if title and title.strip() else None
