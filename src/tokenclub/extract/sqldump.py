"""SQL dumps of a CMS (mysqldump, pg_dump): one document per table row, streamed.

A newspaper's archive often arrives as the dump of its content-management system: `CREATE
TABLE articles (…)` followed by `INSERT INTO articles VALUES (…),(…);` (MySQL, and pg_dump
with --inserts) or `COPY articles (…) FROM stdin;` blocks of tab-separated rows (pg_dump's
default). Read as plain text such a file would be one huge "document" of SQL syntax.

Statements are split with a small quote-aware scanner, line by line, so a dump of gigabytes
is never held whole: one statement at a time (a mysqldump extended INSERT is about a MiB).
No SQL library streams dump rows; the grammar needed is only literals, tuples and the three
statements, so it is written here.

Which column is the text is decided per table: the columns given in `RecordOptions`, else
those named like text (`body`, `content`, `post_content`, `본문` …), else the longest string
of the table's first row when it is long enough to be prose; a table with none (users,
options, sessions) is skipped with one failure saying so. Every document records its table
and text columns, and how they were chosen, in its metadata.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import IO

from tokenclub.errors import ExtractionError
from tokenclub.extract.document import ExtractedDocument, ExtractionFailure
from tokenclub.extract.records import (
    TEXT_FIELD_NAMES,
    TITLE_FIELD_NAMES,
    RecordOptions,
    Schema,
    decoded_lines,
)

Item = ExtractedDocument | ExtractionFailure

GUESS_MIN_CHARS = 100
"""A column is guessed to be the text only if the first row holds at least this much in it."""

_TEXT_SUFFIXES = tuple(f"_{name}" for name in ("content", "body", "text", "article", "contents"))
_TITLE_SUFFIXES = ("_title", "_subject", "_headline")
_IDENT = r"(?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\w$]+)"
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_INSERT = re.compile(
    rf"\s*(?:INSERT|REPLACE)\s+(?:(?:IGNORE|LOW_PRIORITY|DELAYED|HIGH_PRIORITY)\s+)*(?:INTO\s+)?"
    rf"(?P<table>{_NAME})\s*(?:\((?P<columns>[^)]*)\)\s*)?VALUES\s*",
    re.IGNORECASE,
)
_CREATE = re.compile(
    rf"\s*CREATE\s+(?:UNLOGGED\s+|TEMPORARY\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>{_NAME})\s*\(",
    re.IGNORECASE,
)
_COPY = re.compile(
    rf"\s*COPY\s+(?P<table>{_NAME})\s*(?:\((?P<columns>[^)]*)\))?\s+FROM\s+stdin", re.IGNORECASE
)
_CONSTRAINT = re.compile(
    r"(?:PRIMARY|KEY|UNIQUE|CONSTRAINT|INDEX|FULLTEXT|SPATIAL|FOREIGN|CHECK|EXCLUDE)\b", re.IGNORECASE
)
_STRING_MYSQL = r"'(?:[^'\\]|\\.|'')*'"
_STRING_STANDARD = r"'(?:[^']|'')*'"
_STRING_ESCAPED = r"[Ee]'(?:[^'\\]|\\.|'')*'"
_SPACE = re.compile(r"\s*")
_LITERAL_TAIL = (
    r"|(?P<null>NULL)\b"
    r"|(?P<word>TRUE|FALSE)\b"
    r"|(?P<hex>[Xx]'[0-9A-Fa-f]*'|0x[0-9A-Fa-f]+)"
    r"|(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<call>\w+\s*\([^()']*\))"
)
_BACKSLASH = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "f": "\f", "v": "\v"}
_MYSQL_ESCAPE = re.compile(r"\\(.)|''", re.S)
_COPY_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|(.))", re.S)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How string literals are written: MySQL escapes with backslashes, standard SQL does not."""

    backslash_escapes: bool
    hash_comments: bool

    def literal(self) -> re.Pattern[str]:
        string = _STRING_MYSQL if self.backslash_escapes else rf"{_STRING_ESCAPED}|{_STRING_STANDARD}"
        return re.compile(rf"(?:_\w+\s*|N)?(?P<string>{string}){_LITERAL_TAIL}", re.IGNORECASE)


MYSQL = Dialect(backslash_escapes=True, hash_comments=True)
POSTGRES = Dialect(backslash_escapes=False, hash_comments=False)


def dialect_of(head: str) -> Dialect:
    """pg_dump output says so in its first lines (and sets standard strings); anything else is MySQL-like."""
    if "PostgreSQL database dump" in head or "standard_conforming_strings = on" in head:
        return POSTGRES
    return MYSQL


def _unquote(identifier: str) -> str:
    last = identifier
    parts = re.findall(_IDENT, identifier)
    if parts:
        last = parts[-1]
    if last[:1] in '`"' and last[-1:] == last[:1]:
        quote = last[0]
        return last[1:-1].replace(quote * 2, quote)
    return last


def _columns(spec: str) -> list[str]:
    return [_unquote(part.strip()) for part in spec.split(",") if part.strip()]


def _unescape_mysql(body: str) -> str:
    if "\\" not in body and "''" not in body:
        return body
    return _MYSQL_ESCAPE.sub(_unescape_one, body)


def _unescape_one(match: re.Match[str]) -> str:
    char = match.group(1)
    return "'" if char is None else _BACKSLASH.get(char, char)


def _string_value(token: str, dialect: Dialect) -> str:
    if token[:1] in "Ee" and dialect is POSTGRES:
        return _unescape_mysql(token[2:-1])
    body = token[1:-1]
    if dialect.backslash_escapes:
        return _unescape_mysql(body)
    return body.replace("''", "'")


def parse_tuples(text: str, pos: int, dialect: Dialect, where: str) -> Iterator[list[str | None]]:
    """The `(…),(…)` tuples of an INSERT from `pos`; strings unescaped, numbers as written, NULL as None."""
    literal = dialect.literal()
    size = len(text)
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= size or text[pos] == ";":
            return
        if text[pos] != "(":
            raise ExtractionError(where, f"unexpected {text[pos : pos + 20]!r} in INSERT values")
        pos += 1
        row: list[str | None] = []
        while True:
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
            if text.startswith(")", pos) and not row:
                break
            match = literal.match(text, pos)
            if match is None:
                raise ExtractionError(where, f"unreadable value {text[pos : pos + 20]!r} in INSERT")
            if match.group("string") is not None:
                row.append(_string_value(match.group("string"), dialect))
            elif match.group("null") is not None:
                row.append(None)
            else:
                row.append(match.group())
            pos = _SPACE.match(text, match.end()).end()  # type: ignore[union-attr]
            if text.startswith(",", pos):
                pos += 1
                continue
            if text.startswith(")", pos):
                break
            raise ExtractionError(where, f"unexpected {text[pos : pos + 20]!r} after a value in INSERT")
        pos += 1
        yield row
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if text.startswith(",", pos):
            pos += 1


def _copy_field(field_text: str) -> str | None:
    if field_text == "\\N":
        return None
    if "\\" not in field_text:
        return field_text

    def unescape(match: re.Match[str]) -> str:
        octal, hexa, char = match.groups()
        if octal is not None:
            return chr(int(octal, 8))
        if hexa is not None:
            return chr(int(hexa, 16))
        return _BACKSLASH.get(char, char)

    return _COPY_ESCAPE.sub(unescape, field_text)


def _create_columns(body: str) -> list[tuple[str, str]]:
    """(name, type) of each column in the body of a CREATE TABLE, constraints left out."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for chunk in re.split(r"('(?:[^'\\]|\\.|'')*'|[(),])", body):
        if chunk == "(":
            depth += 1
        elif chunk == ")":
            depth -= 1
            if depth < 0:
                break
        elif chunk == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(chunk)
    parts.append("".join(current))
    found: list[tuple[str, str]] = []
    for part in parts:
        text = part.strip()
        if not text or _CONSTRAINT.match(text):
            continue
        match = re.match(rf"({_IDENT})\s*([\w ]*)", text)
        if match:
            found.append((_unquote(match.group(1)), match.group(2).strip().split(" ")[0].lower()))
    return found


@dataclass(slots=True)
class _Table:
    """What is known of one table: its columns, and the text choice once it is made."""

    name: str
    columns: list[str] = field(default_factory=list)
    schema: Schema | None = None
    chosen: tuple[str, ...] = ()
    rule: str = ""
    skipped: bool = False
    rows: int = 0


def _named(columns: list[str], names: tuple[str, ...], suffixes: tuple[str, ...]) -> list[str]:
    folded = {c.casefold(): c for c in columns}
    exact = [folded[n] for n in names if n in folded]
    if exact:
        return exact[:1]
    return [c for c in columns if c.casefold().endswith(suffixes)][:1]


def _choose(table: _Table, record: dict[str, str | None], options: RecordOptions) -> str | None:
    """Fix the table's text and title columns on its first row; the reason it is skipped, if so."""
    columns = list(record)
    if options.text_fields is not None:
        chosen = [c for c in options.text_fields if c in record]
        rule = "given"
        if not chosen:
            return f"none of the text columns {', '.join(options.text_fields)} in ({', '.join(columns)})"
    else:
        chosen = _named(columns, TEXT_FIELD_NAMES, _TEXT_SUFFIXES)
        rule = "named"
        if not chosen:
            longest = max(((len(v or ""), c) for c, v in record.items()), default=(0, ""))
            if longest[0] < GUESS_MIN_CHARS:
                return f"no text column among ({', '.join(columns)}); name one to read it"
            chosen, rule = [longest[1]], "guessed"
    title = options.title_field or next(iter(_named(columns, TITLE_FIELD_NAMES, _TITLE_SUFFIXES)), None)
    table.chosen = tuple(chosen)
    table.rule = rule
    table.schema = Schema(replace(options, text_fields=table.chosen, title_field=title))
    return None


def iter_sql(
    stream: IO[bytes], source: str, byte_size: int, sha256: str, options: RecordOptions
) -> Iterator[Item]:
    """One document per row of every table with text, as `source#<table>:<row>`."""
    reader = _DumpReader(decoded_lines(stream, source, options.max_record_bytes), source, options)
    yield from reader.items(byte_size, sha256)


class _DumpReader:
    def __init__(self, lines: Iterator[str], source: str, options: RecordOptions) -> None:
        head = list(itertools.islice(lines, 40))
        self._dialect = dialect_of("".join(head))
        self._lines = self._numbered(itertools.chain(head, lines))
        self._source = source
        self._options = options
        self._tables: dict[str, _Table] = {}
        self._line = 0

    def _numbered(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self._line += 1
            yield line

    def items(self, byte_size: int, sha256: str) -> Iterator[Item]:
        for start, statement in self._statements():
            where = f"{self._source}#L{start}"
            if (create := _CREATE.match(statement)) is not None:
                table = self._table(create.group("table"))
                table.columns = [name for name, _ in _create_columns(statement[create.end() :])]
            elif (insert := _INSERT.match(statement)) is not None:
                table = self._table(insert.group("table"))
                columns = _columns(insert.group("columns")) if insert.group("columns") else table.columns
                try:
                    for row in parse_tuples(statement, insert.end(), self._dialect, where):
                        yield from self._row(table, columns, row, byte_size, sha256)
                except ExtractionError as err:
                    yield ExtractionFailure(err.source, f"line {start}: {err.reason}")
            elif (copy := _COPY.match(statement)) is not None:
                table = self._table(copy.group("table"))
                columns = _columns(copy.group("columns")) if copy.group("columns") else table.columns
                yield from self._copy_rows(table, columns, byte_size, sha256)
        for table in self._tables.values():
            if table.skipped:
                yield ExtractionFailure(f"{self._source}#{table.name}", table.rule)
        if not any(table.rows for table in self._tables.values()):
            yield ExtractionFailure(self._source, "SQL dump without INSERT or COPY rows")

    def _table(self, name: str) -> _Table:
        key = _unquote(name)
        return self._tables.setdefault(key, _Table(key))

    def _row(
        self, table: _Table, columns: list[str], row: list[str | None], byte_size: int, sha256: str
    ) -> Iterator[Item]:
        table.rows += 1
        if table.skipped:
            return
        names = columns if len(columns) == len(row) else [f"column{n}" for n in range(1, len(row) + 1)]
        record = dict(zip(names, row, strict=True))
        if table.schema is None:
            reason = _choose(table, record, self._options)
            if reason is not None:
                table.skipped, table.rule = True, f"table {table.name} skipped: {reason}"
                return
        assert table.schema is not None
        item = table.schema.document(
            record, f"{self._source}#{table.name}:{table.rows}", "sql", byte_size, sha256
        )
        if isinstance(item, ExtractedDocument):
            chosen = {
                "sql_table": table.name,
                "text_columns": ",".join(table.chosen),
                "text_column_rule": table.rule,
            }
            item = replace(item, metadata={**item.metadata, **chosen})
        yield item

    def _copy_rows(self, table: _Table, columns: list[str], byte_size: int, sha256: str) -> Iterator[Item]:
        for line in self._lines:
            data = line.rstrip("\r\n")
            if data == "\\.":
                return
            row = [_copy_field(value) for value in data.split("\t")]
            yield from self._row(table, columns, row, byte_size, sha256)
        raise ExtractionError(self._source, f"COPY into {table.name} not ended by '\\.'")

    def _statements(self) -> Iterator[tuple[int, str]]:
        """(first line, text) of each statement; comments dropped, quotes respected.

        COPY data lines are read by `_copy_rows` from the same line iterator while this
        generator waits at the COPY statement it yielded.
        """
        limit = self._options.max_record_bytes
        parts: list[str] = []
        size = 0
        start = 0
        quote = ""
        for line in self._lines:
            size += len(line)
            if size > limit:
                raise ExtractionError(self._source, f"statement at line {start} longer than {limit} bytes")
            pos = 0
            while pos < len(line):
                if quote:
                    end = _close(line, pos, quote[-1], self._dialect.backslash_escapes or quote == "E'")
                    parts.append(line[pos:] if end < 0 else line[pos:end])
                    if end < 0:
                        break
                    pos, quote = end, ""
                    continue
                match = _SIGNIFICANT.search(line, pos)
                chunk = line[pos:] if match is None else line[pos : match.start()]
                if chunk.strip() and not parts:
                    start = self._line
                parts.append(chunk)
                if match is None:
                    break
                token, pos = match.group(), match.end()
                if token == ";":
                    statement = "".join(parts).strip()
                    parts, size = [], 0
                    if statement:
                        yield start, statement
                elif self._comment(token, line, pos):
                    pos = len(line)
                elif token == "/*":
                    end = line.find("*/", pos)
                    if end < 0:
                        raise ExtractionError(
                            self._source, f"line {self._line}: /* comment not closed on its line"
                        )
                    pos = end + 2
                else:
                    if not parts or not "".join(parts).strip():
                        parts, start = [], self._line
                    parts.append(token)
                    quote = token if token in "'\"`" else ""
                    if quote == "'" and _ESCAPE_STRING.search(chunk):
                        quote = "E'"
            if not quote and parts and not "".join(parts).strip():
                parts, size = [], 0
        if "".join(parts).strip():
            raise ExtractionError(self._source, f"statement at line {start} not ended by ';'")

    def _comment(self, token: str, line: str, pos: int) -> bool:
        """Whether `token` starts a comment running to the end of the line."""
        if token == "#":
            return self._dialect.hash_comments
        if token == "--":
            rest = line[pos : pos + 1]
            return not rest or rest.isspace()
        return False


_ESCAPE_STRING = re.compile(r"(?:^|\W)[Ee]$")
"""A quote right after a lone E opens a PostgreSQL escape string (E'…'), where \\' is a quote."""
_SIGNIFICANT = re.compile(r"['\"`;#]|--|/\*")


def _close(line: str, pos: int, quote: str, backslash: bool) -> int:
    """The index just past the closing quote on this line, or -1 if the literal goes on."""
    while True:
        end = line.find(quote, pos)
        if backslash and quote != "`":
            slash = line.find("\\", pos)
            if slash >= 0 and (end < 0 or slash < end):
                pos = slash + 2
                continue
        if end < 0:
            return -1
        if line.startswith(quote, end + 1):
            pos = end + 2
            continue
        return end + 1
