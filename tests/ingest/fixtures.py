"""Small real uploads cut from the open corpus (petitions, CC0 as declared by ko-nlp/Korpora)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import CORPORA
from tokenclub.accounts import partners
from tokenclub.accounts.partners import PartnerStatus
from tokenclub.db.engine import Database

PETITIONS = CORPORA / "petitions" / "petitions_2019-05.jsonl"
THRESHOLD = 100_000_000


def approved_partner(db: Database, name: str) -> int:
    """A partner approved to contribute (a threshold no test reaches)."""
    with db.transaction() as session:
        pid = partners.apply(session, name, threshold_words=THRESHOLD).id
        partners.decide(session, pid, PartnerStatus.APPROVED, THRESHOLD)
    return pid


def petitions(first: int, count: int) -> list[dict[str, str]]:
    with PETITIONS.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return rows[first : first + count]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def disguise(text: str) -> str:
    """The edits a copier makes to dodge exact matching: spacing and punctuation changes."""
    text = re.sub(r"\s+", "  ", text)
    return text.replace(".", " .").replace(",", "").replace("?", "!")
