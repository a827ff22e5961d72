"""Receipts: per-batch statistics and their sum, the partner-facing account of an upload."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from tokenclub.curate.step import REJECT
from tokenclub.extract.document import ExtractionFailure

ERRORS_LISTED = 100
"""Errors a receipt lists one by one; past this it gives them grouped by reason."""
ERROR_EXAMPLES = 3
"""Sources shown per group of errors."""

_DIGITS = re.compile(r"\d+")


@dataclass(slots=True)
class BatchStats:
    """What one committed batch contributed; stored with the batch so a resume loses nothing."""

    documents: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    words: int = 0
    tokens: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    repaired: int = 0
    bad_bytes: int = 0
    sql_columns: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> str:
        return json.dumps(
            {
                "documents": self.documents,
                "accepted": self.accepted,
                "rejected": dict(sorted(self.rejected.items())),
                "pii": dict(sorted(self.pii.items())),
                "words": self.words,
                "tokens": self.tokens,
                "errors": self.errors,
                "repaired": self.repaired,
                "bad_bytes": self.bad_bytes,
                "sql_columns": dict(sorted(self.sql_columns.items())),
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> BatchStats:
        data = json.loads(raw)
        return cls(
            documents=data["documents"],
            accepted=data["accepted"],
            rejected=Counter(data["rejected"]),
            pii=Counter(data["pii"]),
            words=data["words"],
            tokens=data["tokens"],
            errors=data["errors"],
            repaired=data.get("repaired", 0),
            bad_bytes=data.get("bad_bytes", 0),
            sql_columns=Counter(data.get("sql_columns", {})),
        )


def stats_of(table: pa.Table, failures: Iterable[ExtractionFailure]) -> BatchStats:
    """Count a finished batch: rejects per reason, PII per type, words and tokens of the accepted."""
    stats = BatchStats(errors=[{"source": f.source, "reason": f.reason} for f in failures])
    stats.documents = table.num_rows
    for meta in table.column("metadata").to_pylist():
        if '"bad_bytes"' in meta:
            stats.repaired += 1
            stats.bad_bytes += int(json.loads(meta)["bad_bytes"])
        if '"sql_table"' in meta:
            chosen = json.loads(meta)
            stats.sql_columns[
                f"{chosen['sql_table']}: {chosen['text_columns']} ({chosen['text_column_rule']})"
            ] += 1
    reasons = table.column(REJECT).to_pylist()
    for reason, pii, words, tokens in zip(
        reasons,
        table.column("pii").to_pylist(),
        table.column("words").to_pylist(),
        table.column("tokens").to_pylist(),
        strict=True,
    ):
        if reason is not None:
            stats.rejected[reason] += 1
            continue
        stats.accepted += 1
        stats.words += int(words)
        stats.tokens += int(tokens)
        stats.pii.update(json.loads(pii))
    return stats


def total(parts: Iterable[BatchStats]) -> BatchStats:
    out = BatchStats()
    for part in parts:
        out.documents += part.documents
        out.accepted += part.accepted
        out.rejected.update(part.rejected)
        out.pii.update(part.pii)
        out.words += part.words
        out.tokens += part.tokens
        out.errors.extend(part.errors)
        out.repaired += part.repaired
        out.bad_bytes += part.bad_bytes
        out.sql_columns.update(part.sql_columns)
    return out


def receipt_dict(
    *,
    upload_id: str,
    partner_id: int,
    files: list[dict[str, Any]],
    stats: BatchStats,
    credited_tokens: int,
    free_tokens_granted: int,
    credit_ratio: str,
    tokenizer: dict[str, Any],
    error_limit: int = ERRORS_LISTED,
) -> dict[str, Any]:
    """The receipt as stored and printed; key order is fixed so equal uploads print equal JSON.

    Errors are listed one by one up to `error_limit`; past it `errors` is empty and only
    `error_groups` (always present) account for them, so a nested zip bomb with ten thousand
    failing members still makes a receipt of a few kilobytes. The full list stays with the
    upload's batches (`upload_errors`).
    """
    return {
        "upload_id": upload_id,
        "replay": False,
        "partner_id": partner_id,
        "files": files,
        "documents_seen": stats.documents,
        "documents_accepted": stats.accepted,
        "rejected": dict(sorted(stats.rejected.items())),
        "pii": dict(sorted(stats.pii.items())),
        "words": stats.words,
        "tokens": stats.tokens,
        "credited_tokens": credited_tokens,
        "credit_ratio": credit_ratio,
        "free_tokens_granted": free_tokens_granted,
        "tokenizer": tokenizer,
        "repaired": {"documents": stats.repaired, "bad_bytes": stats.bad_bytes},
        "sql_text_columns": dict(sorted(stats.sql_columns.items())),
        "error_count": len(stats.errors),
        "error_groups": group_errors(stats.errors),
        "errors": stats.errors if len(stats.errors) <= error_limit else [],
    }


def group_errors(errors: list[dict[str, str]], examples: int = ERROR_EXAMPLES) -> list[dict[str, Any]]:
    """Errors by kind of reason, most frequent first, each with its count and first sources.

    Reasons that differ only in numbers (line 12 / line 13, 4096 bytes / 512 bytes) are one
    kind; the first reason of the kind is shown.
    """
    groups: dict[str, dict[str, Any]] = {}
    for error in errors:
        key = _DIGITS.sub("#", error["reason"])
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"reason": error["reason"], "count": 0, "examples": []}
        group["count"] += 1
        if len(group["examples"]) < examples:
            group["examples"].append(error["source"])
    return sorted(groups.values(), key=lambda g: -int(g["count"]))


def replay_of(receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt for an upload sent again: what was found then, and that nothing is credited now.

    `credited_tokens` and `free_tokens_granted` are what this submission credited (nothing);
    `original` keeps what the first one credited, so no reader mistakes a replay for a credit.
    """
    return {
        **receipt,
        "replay": True,
        "credited_tokens": 0,
        "free_tokens_granted": 0,
        "original": {
            "credited_tokens": receipt["credited_tokens"],
            "free_tokens_granted": receipt["free_tokens_granted"],
        },
    }
