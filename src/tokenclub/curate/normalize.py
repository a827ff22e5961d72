"""Text normalization: one canonical spelling of the same text before filters, PII and dedup.

Character clean-up: Unicode NFC (conjoining jamo compose into syllables; never NFKC, which
would turn compatibility jamo such as ㅋㅋ/ㅠㅠ — real Korean writing — into conjoining jamo
and ① into 1); control characters except tab and newline, zero-width characters (U+200B-D,
U+2060, U+FEFF) and the soft hyphen removed; full-width ASCII (U+FF01-FF5E) and all Unicode
spaces folded to ASCII; CR/CRLF and other line separators become LF; runs of spaces collapse,
lines are stripped, and runs of blank lines become one blank line. U+119E (conjoining
arae-a) after no leading consonant cannot belong to a syllable; documents use it as a middle
dot (탄소중립ᆞ녹색성장), so it becomes its compatibility twin U+318D like the rest of them.

Hard-wrapped text (PDF, HWP printed to PDF, fixed-width TXT) is rejoined into paragraphs.
A break between line ``L`` and the next line ``N`` is removed when

1. both lines contain a letter and neither is a table row (tab or ``|`` cells); ``L`` is
   at most ``MAX_WRAP_WIDTH`` display cells wide (a paragraph-per-line text is never
   reflowed) and does not end a sentence (its last character is none of ``. ? ! … : ;``
   or a closing quote or bracket: Korean sentence endings 다. 요. 음. 함. carry a period);
   and ``N`` is not indented deeper than ``L``; and
2. either the break falls inside a word (joined without a space), or ``N`` starts no list item
   or heading (□ ○ ◦ • ※ ①, ``-``/``·`` and a space, ``1.``, ``1)``, ``(1)``, ``가.``, ``Ⅰ.``,
   ``제1조(…)``, ``제1장``, ``#``) and ``L`` is full: at least ``FULL_LINE_SHARE`` of the wrap
   width, the 90th percentile of the line widths when that lies between ``MIN_WRAP_WIDTH``
   and ``MAX_WRAP_WIDTH`` (joined with a space). Short lines — titles, verse, signature
   blocks, menus — keep their breaks.

Korean word processors wrap at any syllable, so a break may split a word (탄소중 / 립기본계획),
and the space must not be invented. A break falls inside a word when the Hangul run ending
``L`` and the Hangul run starting ``N`` together begin a run that occurs elsewhere in the
document, not at a line end (탄소중립기본계획 appears elsewhere); when the run ending ``L`` never
occurs whole and it plus the first syllable of ``N`` begins such a run (탄소중립위원 / 회가:
탄소중립위원회의 appears); or when ``N`` starts with a particle that never stands alone (에, 의,
을, 를, 은, 는, 와, 과, 로, 으로, 에서, 에게: 강화 / 에 관한). Evidence from the document itself
never makes up a word its author did not write. Joining changes the wrap width and the
evidence, so reflowing repeats until nothing joins, which makes `normalize_text` idempotent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tokenclub.curate.step import TextTransform

MIN_WRAP_WIDTH = 24
MAX_WRAP_WIDTH = 160
FULL_LINE_SHARE = 0.75
WRAP_PERCENTILE = 0.9

_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


def _translation() -> dict[int, str | None]:
    """One `str.translate` table for deletions, full-width folding and space folding."""
    table: dict[int, str | None] = {
        cp: None for cp in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]
    }
    table.update(dict.fromkeys((0x00AD, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF)))
    table.update({cp: chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)})
    table.update(dict.fromkeys((0x00A0, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000), " "))
    return table


_TRANSLATION = _translation()
_NEEDS_TRANSLATION = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\xa0\xad\u2000-\u200d\u202f\u205f\u2060\u3000\ufeff\uff01-\uff5e]"
)
# U+119E (conjoining arae-a) that follows no leading consonant cannot be part of a syllable:
# documents use it as a middle dot, like its compatibility twin U+318D (탄소중립ᆞ녹색성장).
_STRAY_ARAEA = re.compile("(?<![\u1100-\u115f\ua960-\ua97f])\u119e")
_SPACE_RUN = re.compile(" {2,}")
_BLANK_RUN = re.compile("\n{3,}")
_WIDE = re.compile(
    "[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]"
)
_LETTER = re.compile(r"[^\W\d_]")
_SENTENCE_END = frozenset(".?!…:;)]}」』”’\"'〉》〕】>。")
_LIST_START = re.compile(
    r"""(?:
        [□■○●◦◎◇◆△▲▽▼▷▶▸►▣☐☑※★☆✓✔❍❏•\u2460-\u24ff\u2160-\u217f\u3200-\u327f]
      | [-*+·ㆍ‧∙>]\s
      | (?:\d{1,3}|[가나다라마바사아자차카타파하]|[a-zA-Z])[.)]\s
      | \((?:\d{1,3}|[가나다라마바사아자차카타파하])\)
      | [IVX]{1,4}\.\s
      | 제\s?\d+\s?(?:조(?:의\s?\d+)?\s?\(|[장절관편]\s)
      | \#{1,6}\s
    )""",
    re.VERBOSE,
)
# A run that ends a line may be the head of a split word, so it is no evidence; one that
# starts a line is a word start (or, rarely, a split word's tail, which matches nothing).
_EVIDENCE_RUN = re.compile("(?<![\uac00-\ud7a3])[\uac00-\ud7a3]+(?=[^\n\uac00-\ud7a3])")
_TRAILING_HANGUL = re.compile("[\uac00-\ud7a3]+$")
_LEADING_HANGUL = re.compile("[\uac00-\ud7a3]+")
_BOUND_PARTICLE = re.compile("(?:에서|에게|으로|에|의|을|를|은|는|와|과|로)(?![\uac00-\ud7a3])")


@dataclass(frozen=True, slots=True)
class _Line:
    indent: int
    text: str
    width: int
    joinable: bool

    @classmethod
    def of(cls, indent: int, text: str) -> _Line:
        """`joinable`: holds a letter and is no table row (cells split by tabs or |)."""
        joinable = _LETTER.search(text) is not None and "\t" not in text and not text.startswith("|")
        return cls(indent, text, _display_width(text), joinable)

    def joined(self, separator: str, following: _Line) -> _Line:
        """Both lines as one, unindented as a normalized line is (widths simply add up)."""
        return _Line(
            0,
            self.text + separator + following.text,
            self.width + len(separator) + following.width,
            self.joinable and following.joinable,
        )


def _display_width(text: str) -> int:
    """Terminal cells: Hangul and CJK count twice, which keeps mixed lines comparable."""
    return len(text) + len(_WIDE.findall(text))


def _evidence_runs(lines: list[_Line]) -> tuple[set[str], set[str]]:
    """The Hangul runs that do not end a line, and all their prefixes (2+ syllables)."""
    runs = set(_EVIDENCE_RUN.findall("\n".join(line.text for line in lines)))
    prefixes = {run[:k] for run in runs for k in range(2, len(run) + 1)}
    return runs, prefixes


class _Reflower:
    """Joins the hard-wrapped lines of one document (see the module docstring)."""

    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        widths = sorted(line.width for line in lines if line.text)
        wrap = widths[int(len(widths) * WRAP_PERCENTILE)] if len(widths) >= 3 else 0
        self.full_width = FULL_LINE_SHARE * wrap if MIN_WRAP_WIDTH <= wrap <= MAX_WRAP_WIDTH else None
        self._evidence: tuple[set[str], set[str]] | None = None

    def inside_word(self, line: _Line, following: _Line) -> bool:
        tail = _TRAILING_HANGUL.search(line.text)
        head = _LEADING_HANGUL.match(following.text)
        if tail is None or head is None:
            return False
        if _BOUND_PARTICLE.match(following.text):
            return True
        if self._evidence is None:
            self._evidence = _evidence_runs(self.lines)
        runs, prefixes = self._evidence
        start, rest = tail.group(), head.group()
        return start + rest in prefixes or (start not in runs and start + rest[0] in prefixes)

    def separator(self, line: _Line, following: _Line) -> str | None:
        """ "" or " " to join the two lines, None to keep the break."""
        if (
            line.width > MAX_WRAP_WIDTH
            or line.text[-1] in _SENTENCE_END
            or following.indent > line.indent
            or not line.joinable
            or not following.joinable
        ):
            return None
        if self.inside_word(line, following):
            return ""
        if _LIST_START.match(following.text):
            return None
        if self.full_width is not None and line.width >= self.full_width:
            return " "
        return None

    def paragraphs(self) -> list[_Line]:
        out: list[_Line] = []
        previous: _Line | None = None
        for line in self.lines:
            if previous is not None and previous.text and line.text:
                separator = self.separator(previous, line)
                if separator is not None:
                    out[-1] = out[-1].joined(separator, line)
                    previous = line
                    continue
            out.append(line)
            previous = line
        return out


def _split_lines(text: str) -> list[_Line]:
    lines = []
    for raw in text.split("\n"):
        stripped = raw.lstrip(" \t")
        content = _SPACE_RUN.sub(" ", stripped.rstrip(" \t"))
        lines.append(_Line.of(len(raw) - len(stripped), content))
    return lines


def _reflow(lines: list[_Line]) -> list[str]:
    """Rejoin until a fixed point: joined lines change the wrap width and the word evidence,
    so one more pass may find more joins; repeating makes `normalize_text` idempotent."""
    while True:
        paragraphs = _Reflower(lines).paragraphs()
        if len(paragraphs) == len(lines):
            return [line.text for line in paragraphs]
        lines = paragraphs


def normalize_text(text: str) -> str:
    """The canonical form of one document's text (idempotent)."""
    text = _LINE_BREAKS.sub("\n", text)
    if _NEEDS_TRANSLATION.search(text):
        text = text.translate(_TRANSLATION)
    text = _STRAY_ARAEA.sub("\u318d", unicodedata.normalize("NFC", text))
    if "\n" in text:
        text = "\n".join(_reflow(_split_lines(text)))
        text = _BLANK_RUN.sub("\n\n", text)
    else:
        text = _SPACE_RUN.sub(" ", text)
    return text.strip(" \t\n")


class NormalizeStep(TextTransform):
    """Rewrites every live document's text into its normalized form."""

    name = "normalize"

    def transform(self, text: str) -> str:
        return normalize_text(text)
