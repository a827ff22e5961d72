"""Text from uploads, made safe to print on an operator's terminal.

File names and reasons come from partners: a name holding `\\x1b[31m` (an ANSI escape), a
carriage return or a right-to-left override would otherwise recolour, overwrite or reorder
what the operator reads. Such characters are shown escaped, as Python writes them, and the
result is a Rich `Text`, so square brackets in a name are never read as Rich markup.
"""

from __future__ import annotations

import unicodedata

from rich.text import Text

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Controls, format characters (bidi overrides, zero-width) and line/paragraph separators."""


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """`text` with control, bidi and invisible format characters written as `\\x1b`, `\\u202e` …"""
    if text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)


def safe(value: object) -> Text:
    """A table cell for any value: escaped, and never parsed as markup."""
    return Text(escape_controls(str(value)))
