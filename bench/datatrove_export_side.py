"""The datatrove half of bench_export.py; runs in bench/.venv-datatrove (see setup_datatrove.sh).

Usage: ``python datatrove_export_side.py INPUT_JSONL WORK_FOLDER TOKENIZER_JSON``. Reads the
snapshot's documents (``{"id", "text"}`` lines, in the export's order) into datatrove Documents
untimed, then times in CPU seconds (all threads) its ParquetWriter (zstd) and its
DocumentTokenizer (the same tokenizer file, ``<|endoftext|>`` after every document, no
shuffle). Prints one JSON object: seconds per writer, bytes written, tokens, datatrove's version.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

from datatrove.data import Document  # type: ignore[import-not-found]
from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer  # type: ignore[import-not-found]
from datatrove.pipeline.writers import ParquetWriter  # type: ignore[import-not-found]


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    source, work, tokenizer = sys.argv[1:4]
    with open(source, encoding="utf-8") as fh:
        docs = [Document(text=row["text"], id=row["id"]) for row in map(json.loads, fh)]
    out: dict[str, object] = {"version": importlib.metadata.version("datatrove")}

    start = time.process_time()
    with ParquetWriter(f"{work}/parquet", compression="zstd") as writer:
        for doc in docs:
            writer.write(doc, rank=0)
    out["parquet_seconds"] = time.process_time() - start
    out["parquet_bytes"] = _bytes(Path(work) / "parquet")

    step = DocumentTokenizer(
        f"{work}/tokens",
        tokenizer_name_or_path=tokenizer,
        eos_token="<|endoftext|>",
        shuffle_documents=False,
        save_final_metadata=False,
    )
    start = time.process_time()
    step.run(iter(docs), rank=0, world_size=1)  # writes as it consumes; returns nothing
    out["tokenize_seconds"] = time.process_time() - start
    out["tokenize_bytes"] = _bytes(Path(work) / "tokens")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
