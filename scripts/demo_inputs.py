"""Prepare the demo's uploads from the open corpus: a petitions month and a reseller's disguised copy."""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path


def _jsonl(rows: list[dict[str, str]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(corpora: Path, out: Path) -> None:
    with (corpora / "petitions" / "petitions_2019-06.jsonl").open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    (out / "petitions-2019-06.jsonl").write_text(_jsonl(rows), encoding="utf-8")
    copied = [{**r, "content": re.sub(r"\s+", "  ", r["content"]).replace(".", " .")} for r in rows[:200]]
    with zipfile.ZipFile(out / "reseller.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/copied.jsonl", _jsonl(copied))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
