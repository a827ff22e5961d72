"""Receipts: errors grouped past a limit, repaired bytes counted."""

from __future__ import annotations

import json

import pyarrow as pa

from tokenclub.curate.step import REJECT
from tokenclub.extract.document import ExtractionFailure
from tokenclub.ingest.receipt import BatchStats, group_errors, receipt_dict, stats_of, total


def _receipt(stats: BatchStats, limit: int) -> dict[str, object]:
    return receipt_dict(
        upload_id="u",
        partner_id=1,
        files=[],
        stats=stats,
        credited_tokens=0,
        free_tokens_granted=0,
        credit_ratio="1",
        tokenizer={},
        error_limit=limit,
    )


def test_errors_group_by_reason_ignoring_numbers() -> None:
    errors = [
        {"source": f"a.jsonl#L{n}", "reason": f"line {n}: invalid JSON (Expecting value: line 1 column {n})"}
        for n in range(1, 6)
    ] + [{"source": "b.pdf", "reason": "empty file"}]
    assert group_errors(errors) == [
        {
            "reason": "line 1: invalid JSON (Expecting value: line 1 column 1)",
            "count": 5,
            "examples": ["a.jsonl#L1", "a.jsonl#L2", "a.jsonl#L3"],
        },
        {"reason": "empty file", "count": 1, "examples": ["b.pdf"]},
    ]


def test_errors_are_listed_up_to_the_limit_then_only_grouped() -> None:
    stats = BatchStats(errors=[{"source": f"z.zip!{n}.txt", "reason": "empty file"} for n in range(5)])
    listed = _receipt(stats, limit=5)
    assert (listed["error_count"], len(listed["errors"])) == (5, 5)  # type: ignore[arg-type]
    grouped = _receipt(stats, limit=4)
    assert (grouped["error_count"], grouped["errors"]) == (5, [])
    assert grouped["error_groups"] == [
        {"reason": "empty file", "count": 5, "examples": ["z.zip!0.txt", "z.zip!1.txt", "z.zip!2.txt"]}
    ]


def test_repaired_bytes_and_sql_columns_are_summed() -> None:
    table = pa.table(
        {
            REJECT: [None, "too short"],
            "pii": ["{}", "{}"],
            "words": [3, 1],
            "tokens": [5, 2],
            "metadata": [
                json.dumps({"encoding": "utf-8", "bad_bytes": "6"}),
                json.dumps(
                    {
                        "sql_table": "articles",
                        "text_columns": "body",
                        "text_column_rule": "named",
                        "bad_bytes": "2",
                    }
                ),
            ],
        }
    )
    stats = stats_of(table, [ExtractionFailure("x", "empty file")])
    again = BatchStats.from_json(stats.to_json())
    summed = total([again, again])
    assert (summed.repaired, summed.bad_bytes, summed.accepted) == (4, 16, 2)
    receipt = _receipt(summed, 100)
    assert receipt["repaired"] == {"documents": 4, "bad_bytes": 16}
    assert receipt["sql_text_columns"] == {"articles: body (named)": 2}
