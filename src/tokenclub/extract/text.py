"""Plain text and Markdown: find the encoding, decode strictly, normalise to NFC.

Korean files arrive in UTF-8 (with or without BOM), UTF-16 from Windows tools, and CP949
from older Korean software. Decoding is strict: a wrong guess must fail loudly, not turn
Korean into mojibake that would then be counted and credited as text.
"""

from __future__ import annotations

import codecs
import re
import threading
import unicodedata

from charset_normalizer import from_bytes

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM begins with UTF-16's.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_EUC_KR = "euc_kr"
"""Python's codec name for EUC-KR and its aliases (ks_c_5601-1987, euckr …).

EUC-KR is a strict subset of CP949, and files labelled EUC-KR routinely hold CP949-only
syllables (똠, 햏, 쌰 …), so EUC-KR is always decoded as CP949.
"""

_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c") + b"\x7f"
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
MAX_CONTROL_SHARE = 0.01
"""Text has almost no C0 control bytes; binary data has about one in eight."""

MESS_THRESHOLD = 0.5
"""charset-normalizer's tolerance for odd characters. Its default (0.2) found no encoding for
47 of 368 real CP949 samples (petitions, headlines: ‘’“”…· are double-byte in CP949); at
0.5 it finds CP949 for all of them and still nothing for random bytes."""

MAX_BAD_BYTE_SHARE = 0.01
"""Default share of undecodable bytes a text file may have and still be read, with each bad
byte sequence replaced by U+FFFD. Text in the wrong codec has far more (CP949 read as UTF-8:
over half its bytes), so 1% repairs damage without letting mojibake through."""

_REPAIR_CODECS = ("utf-8", "cp949")
_TRUSTED_CODECS = frozenset({"utf-8", "cp949", "utf-16", "utf-32"})
_HANGUL = re.compile("[\uac00-\ud7a3]")
_REPAIR_ERRORS = "tokenclub.count-and-replace"
_bad_bytes = threading.local()


def _count_and_replace(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeDecodeError)
    _bad_bytes.count += error.end - error.start
    return "\ufffd", error.end


codecs.register_error(_REPAIR_ERRORS, _count_and_replace)

_NFC_PIECE = 64 * 1024

_MARKDOWN_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#\r]*$", re.MULTILINE)


def to_nfc(text: str) -> str:
    """Unicode NFC, the one form the pipeline stores (never NFKC: it rewrites ㈜, ① and full-width forms).

    Long texts are normalised piecewise, cut after a newline (nothing composes across one),
    so that a book with one decomposed syllable does not pay for renormalising all of it.
    """
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    parts: list[str] = []
    start = 0
    while start < len(text):
        end = text.find("\n", start + _NFC_PIECE) + 1 or len(text)
        piece = text[start:end]
        parts.append(
            piece if unicodedata.is_normalized("NFC", piece) else unicodedata.normalize("NFC", piece)
        )
        start = end
    return "".join(parts)


def codec_name(label: str) -> str | None:
    """Python's codec for an encoding label, with the EUC-KR family mapped to CP949."""
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return "cp949" if name == _EUC_KR else name


def decode_text(data: bytes, source: str, declared: str | None = None) -> tuple[str, str]:
    """Decode bytes to NFC text; returns the text and the codec used.

    Order: a BOM decides; else strict UTF-8; else an encoding the file declares (HTML's
    `charset`), if it decodes; else charset-normalizer's best guess.
    Raises ExtractionError("not text: …") for binary data or bytes no encoding fits.
    """
    for bom, bom_codec in _BOMS:
        if data.startswith(bom):
            return to_nfc(_strict(data, bom_codec, source)), bom_codec.removesuffix("-sig")
    controls = len(data.translate(None, _NOT_CONTROL))
    if controls > MAX_CONTROL_SHARE * len(data):
        raise ExtractionError(source, f"not text: binary data ({controls} control bytes in {len(data)})")
    try:
        return to_nfc(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError as err:
        if _broken_utf8(data):
            raise ExtractionError(source, f"not text: invalid UTF-8 at byte {err.start}") from None
    declared_codec = codec_name(declared) if declared else None
    if declared_codec is not None:
        try:
            return to_nfc(data.decode(declared_codec)), declared_codec
        except UnicodeDecodeError:
            pass
    best = from_bytes(data, threshold=MESS_THRESHOLD).best()
    guessed = codec_name(best.encoding) if best is not None else None
    if guessed is None:
        raise ExtractionError(source, "not text: no text encoding fits the bytes")
    return to_nfc(_strict(data, guessed, source)), guessed


def decode_repairing(data: bytes, source: str, max_bad_share: float) -> tuple[str, str, int]:
    """Like `decode_text`, but a Korean file with a few damaged bytes is read, not refused.

    A damaged UTF-8 or CP949 file fails strict decoding, or worse, is "decoded" by some
    single-byte codec into mojibake. So unless strict decoding found UTF-8 or CP949, both are
    tried with each bad byte sequence replaced by U+FFFD, and the one with fewer bad bytes is
    taken if they are at most `max_bad_share` of the file and it reads as Korean. Returns the
    text, the codec and the number of bad bytes.
    """
    strict: tuple[str, str] | None = None
    strict_reason = ""
    try:
        strict = decode_text(data, source)
    except ExtractionError as err:
        if err.reason.startswith("not text: binary data"):
            raise
        strict_reason = err.reason
    if strict is not None and strict[1] in _TRUSTED_CODECS:
        return strict[0], strict[1], 0
    bad, codec, text = min((_decode_counting(data, codec) for codec in _REPAIR_CODECS), key=lambda c: c[0])
    korean = _HANGUL.search(text) is not None
    if korean and bad <= max_bad_share * len(data):
        return to_nfc(text), codec, bad
    if strict is not None and not korean:
        return strict[0], strict[1], 0
    reason = strict_reason if strict is None else "not text: damaged Korean text"
    raise ExtractionError(
        source,
        f"{reason}; {bad} of {len(data)} bytes are not {codec}, "
        f"more than the {max_bad_share:.2%} that are repaired",
    )


def _decode_counting(data: bytes, codec: str) -> tuple[int, str, str]:
    """(bad bytes, codec, text) of `data` decoded with each bad sequence replaced by U+FFFD."""
    _bad_bytes.count = 0
    text = data.decode(codec, _REPAIR_ERRORS)
    return _bad_bytes.count, codec, text


def _broken_utf8(data: bytes) -> bool:
    """UTF-8 with a few bad bytes (a cut-off or damaged file), not another encoding.

    Such a file must fail: any legacy codec would "decode" it into plausible mojibake.
    Bytes of CP949 text, read as UTF-8, are almost all invalid; the first MiB tells.
    """
    text = data[: 1024 * 1024].decode("utf-8", "replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", "ignore")) - bad
    return good > 0 and bad <= max(1, good // 100)


def _strict(data: bytes, codec: str, source: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as err:
        raise ExtractionError(source, f"not text: invalid {codec} at byte {err.start}") from None


def read_text(
    data: bytes,
    source: str,
    sha256: str,
    *,
    markdown: bool = False,
    max_bad_share: float = MAX_BAD_BYTE_SHARE,
) -> list[ExtractedDocument]:
    """One document for a text or Markdown file; a Markdown file's first `# heading` is its title.

    The whole file is one document however long its lines are: a 10 MB line is just a long
    document, and bounding file size is the caller's job (`ArchiveLimits.max_member_size`).
    A file with a few damaged bytes is read with them replaced; their number is recorded in
    the metadata as `bad_bytes` (and summed in the receipt).
    """
    text, codec, bad = decode_repairing(data, source, max_bad_share)
    title = None
    if markdown and (match := _MARKDOWN_TITLE.search(text)) is not None:
        title = match.group(1)
    metadata = {"encoding": codec}
    if bad:
        metadata["bad_bytes"] = str(bad)
    return [
        ExtractedDocument(
            source=source,
            format="markdown" if markdown else "text",
            text=text,
            title=title,
            byte_size=len(data),
            sha256=sha256,
            metadata=metadata,
        )
    ]
