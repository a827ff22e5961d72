"""HTML pages: the main content (trafilatura), not the menus, footers and ads around it.

Crediting navigation bars and copyright lines as contributed text would pay partners for
boilerplate and fill the corpus with repeats, hence main-content extraction. Pages too
short for trafilatura's heuristics fall back to all visible text.
"""

from __future__ import annotations

import re
from configparser import ConfigParser
from copy import deepcopy

import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import Document, use_config

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument
from tokenclub.extract.text import decode_text, to_nfc

_DECLARED_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w:.-]+)|<\?xml[^>]+encoding\s*=\s*["']([\w.:-]+)""", re.I
)

_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt"),
        *("figcaption", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main"),
        *("nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul"),
    }
)
_HIDDEN_TAGS = frozenset({"script", "style", "head", "template", "noscript"})


def _config() -> ConfigParser:
    config = deepcopy(use_config())
    # Size bounds are the caller's (ArchiveLimits); trafilatura's 20 MB cap would reject
    # pages silently, and its 250-character minimum would drop short notices.
    config["DEFAULT"]["max_file_size"] = str(2**40)
    config["DEFAULT"]["min_extracted_size"] = "1"
    return config


_CONFIG = _config()


def declared_charset(data: bytes) -> str | None:
    """The encoding a page names in `<meta charset>` or its XML declaration."""
    match = _DECLARED_CHARSET.search(data[:4096])
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("ascii")


def markup_root(text: str) -> lxml.html.HtmlElement:
    """Parse (X)HTML leniently; entity expansion and network access stay off."""
    parser = lxml.html.HTMLParser(encoding="utf-8", no_network=True, remove_comments=True)
    return lxml.html.document_fromstring(text.encode("utf-8", "surrogatepass"), parser=parser)


def visible_text(root: etree._Element) -> str:
    """All text a browser would show, one line per block element, runs of spaces collapsed."""
    parts: list[str] = []
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, element in walker:
        tag = element.tag.rsplit("}", 1)[-1].lower() if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            if tag in _HIDDEN_TAGS or not tag:
                walker.skip_subtree()
            elif element.text:
                parts.append(element.text)
        else:
            if tag in _BLOCK_TAGS:
                parts.append("\n")
            if element.tail:
                parts.append(element.tail)
    lines = (" ".join(line.split()) for line in "".join(parts).splitlines())
    return "\n".join(line for line in lines if line)


def read_html(data: bytes, source: str, sha256: str) -> list[ExtractedDocument]:
    """One document: the page's main text, titled by the page's title."""
    text, codec = decode_text(data, source, declared_charset(data))
    try:
        extracted = trafilatura.bare_extraction(
            text, with_metadata=True, include_comments=False, include_tables=True, config=_CONFIG
        )
        body, title = (extracted.text, extracted.title) if isinstance(extracted, Document) else (None, None)
        if not body:
            root = markup_root(text)
            body = visible_text(root)
            title = title or root.findtext(".//title")
    except (etree.LxmlError, ValueError) as err:
        raise ExtractionError(source, f"unreadable HTML ({err})") from None
    return [
        ExtractedDocument(
            source=source,
            format="html",
            text=to_nfc(body),
            title=to_nfc(title.strip()) if title and title.strip() else None,
            byte_size=len(data),
            sha256=sha256,
            metadata={"encoding": codec},
        )
    ]
