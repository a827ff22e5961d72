"""EPUB books, read straight from the container: container.xml → OPF package → spine → XHTML.

The package format is small and fully specified, so it is parsed here with lxml rather than
with EbookLib, which is AGPL and cannot be a dependency of this Apache-2.0 project. The
spine gives the reading order; files outside it (navigation, covers, styles) are skipped.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from urllib.parse import unquote

from lxml import etree

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.html import declared_charset, markup_root, visible_text
from tokenclub.extract.sniff import ZIP_ERRORS
from tokenclub.extract.text import decode_text, to_nfc

_XHTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, recover=True)


def _xml(archive: zipfile.ZipFile, name: str, source: str) -> etree._Element:
    try:
        data = archive.read(name)
    except KeyError:
        raise ExtractionError(source, f"EPUB lacks {name}") from None
    root = etree.fromstring(data, parser=_XML_PARSER)
    if root is None:
        raise ExtractionError(source, f"EPUB's {name} is not XML")
    return root


def _local(root: etree._Element, path: str) -> list[etree._Element]:
    """Elements by a slash-separated path of local names, whatever namespace prefixes are used."""
    steps = "/".join(f"*[local-name()='{step}']" for step in path.split("/"))
    found = root.xpath(f"//{steps}")
    return (
        [element for element in found if isinstance(element, etree._Element)]
        if isinstance(found, list)
        else []
    )


def read_epub(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """One document for the book: its spine's chapters in order, separated by blank lines."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [_read(archive, source, sha256, len(data))]
    except ZIP_ERRORS as err:
        raise ExtractionError(source, f"corrupt EPUB ({type(err).__name__}: {err})") from None
    except etree.LxmlError as err:
        raise ExtractionError(source, f"corrupt EPUB ({err})") from None


def _read(archive: zipfile.ZipFile, source: str, sha256: str, byte_size: int) -> ExtractedDocument:
    rootfiles = _local(_xml(archive, "META-INF/container.xml", source), "rootfiles/rootfile")
    opf_path = rootfiles[0].get("full-path") if rootfiles else None
    if not opf_path:
        raise ExtractionError(source, "EPUB's container.xml names no package document")
    opf = _xml(archive, opf_path, source)
    base = posixpath.dirname(opf_path)
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in _local(opf, "manifest/item")
    }
    encrypted = _encrypted_paths(archive, source)
    chapters: list[str] = []
    for itemref in _local(opf, "spine/itemref"):
        href, media_type = manifest.get(itemref.get("idref"), ("", ""))
        if not href or media_type not in _XHTML_TYPES:
            continue
        path = posixpath.normpath(posixpath.join(base, unquote(href.split("#", 1)[0])))
        if path in encrypted:
            raise ExtractionError(source, "DRM-protected EPUB (its chapters are encrypted)")
        try:
            chapter = archive.read(path)
        except KeyError:
            raise ExtractionError(source, f"EPUB's spine names a missing file: {path}") from None
        text, _ = decode_text(chapter, f"{source}!{path}", declared_charset(chapter))
        chapters.append(visible_text(markup_root(text)))
    titles = [t.text.strip() for t in _local(opf, "metadata/title") if t.text and t.text.strip()]
    languages = [t.text.strip() for t in _local(opf, "metadata/language") if t.text and t.text.strip()]
    return ExtractedDocument(
        source=source,
        format="epub",
        text=to_nfc("\n\n".join(chapter for chapter in chapters if chapter)),
        title=to_nfc(titles[0]) if titles else None,
        byte_size=byte_size,
        sha256=sha256,
        metadata={"language": languages[0]} if languages else {},
    )


def _encrypted_paths(archive: zipfile.ZipFile, source: str) -> set[str]:
    """Files META-INF/encryption.xml lists; font obfuscation lists fonts only, DRM the chapters."""
    if "META-INF/encryption.xml" not in archive.namelist():
        return set()
    encryption = _xml(archive, "META-INF/encryption.xml", source)
    references = _local(encryption, "EncryptedData/CipherData/CipherReference")
    return {posixpath.normpath(unquote(ref.get("URI") or "")) for ref in references}
