"""False positives of the guard on fresh Korean text, measured honestly.

Indexed: the 2019-05 petitions (dealt to three partners), one document at a time (an ingest
that indexes each upload as it commits: the document-frequency sketch learns a shared passage
one document after another; `--batch N` indexes N at a time), with the board's moderation
notice left in exactly 10 of them (the threshold of common text; the other 257 that carry it
have it taken out). Public text: the files given with ``--public`` (the operator's list, e.g.
the constitution), loaded as `guard public add` does. Fresh replies: the 2019-07 petitions (a
month not indexed) cut into 750-character replies (about 300 tokens), as they are and carrying
contributed boilerplate: the moderation notice and, with public text loaded, a sentence of it
that the indexed petitions quote, each put between two sentences of the reply.

A flagged reply is a **true** positive only if it really shares a run of at least the leak
length (50 guard letters) with an indexed document, and that run is neither common (held by
10 or more documents: the exact count over every 50-letter run of the corpus) nor in the public
text, nor has a letter inside a common or public run of the reply; every other flagged reply
is a **false** positive. Measured for the plain view (the
reference) and every view (`LeakScanner.inspect`, what the gateway runs), and counted twice:
in guard letters (jamo: 50 are about 20 Hangul syllables, the guard's own leak length) and in
the issue's wording, 50 NFKC letters or digits (a syllable is one letter, so 50 syllables).

`--leak-length N` builds the guard for another leak length (a true positive stays a shared run
of 50 letters in each reading); `--leak-letters N` gives it a verdict in N NFKC letters
(`TOKENCLUB_GUARD_LEAK_LETTERS`). Run: ``.venv/bin/python bench/bench_guard_fp.py [--public FILE
...] [--batch N] [--leak-length N] [--leak-letters N]`` (about ten seconds).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tokenclub.guard.config import GuardSettings
from tokenclub.guard.detection.scanner import LeakScanner
from tokenclub.guard.hashing import GramHash
from tokenclub.guard.indexing.commonness import add_public_text
from tokenclub.guard.indexing.index import COMMON_DOCS, IndexParams, open_index, writer
from tokenclub.guard.normalize import normalize

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "petitions"
LEAK = 50
REPLY = 750
NOTICE = re.compile(r"\[본 게시물의 일부 내용이[^\]]{5,80}\]")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def petitions(month: str) -> list[str]:
    with (CORPORA / f"petitions_{month}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["content"] for line in fh]


def guard_letters(text: str) -> np.ndarray:
    return normalize(text).letters


def nfkc_text(text: str) -> str:
    """The issue's letters: NFKC, case-folded, letters and digits only (a Hangul syllable is one)."""
    return "".join(
        c for c in unicodedata.normalize("NFKC", text).casefold() if unicodedata.category(c)[0] in "LN"
    )


def nfkc_letters(text: str) -> np.ndarray:
    return np.frombuffer(nfkc_text(text).encode("utf-32-le"), dtype="<u4").astype(np.uint32)


def runs(text: str, spec: GramHash, letters_of: Callable[[str], np.ndarray] = guard_letters) -> list[int]:
    """Keys of every run of `LEAK` letters of the text (guard letters unless told otherwise)."""
    letters = letters_of(text)
    if len(letters) < LEAK:
        return []
    keys: list[int] = spec.at(letters, np.arange(len(letters) - LEAK + 1, dtype=np.int64)).tolist()
    return keys


class Truth:
    """Which replies really share a secret run with the corpus: exact document counts of every
    50-letter run, less the runs of public text; letters are guard letters, or what
    `letters_of` makes of a text."""

    def __init__(
        self, docs: list[str], public: list[str], letters_of: Callable[[str], np.ndarray] = guard_letters
    ) -> None:
        self.spec = GramHash(LEAK, 99)
        self.letters_of = letters_of
        per_doc = [np.unique(np.array(runs(d, self.spec, letters_of), dtype=np.uint64)) for d in docs]
        keys, counts = np.unique(np.concatenate(per_doc), return_counts=True)
        self.documents = dict(zip(keys.tolist(), counts.tolist(), strict=True))
        self.public = {key for text in public for key in runs(text, self.spec, letters_of)}

    def secret(self, reply: str) -> bool:
        """Whether some run of the reply is held by 1 to 9 documents, is not public, and has no
        letter inside a common or public run of the reply (a run of 44 letters of a common
        notice and the 6 of a stock "입니다." before it is not a secret)."""
        keys = runs(reply, self.spec, self.letters_of)
        if not keys:
            return False
        counts = np.array([self.documents.get(key, 0) for key in keys])
        public = np.array([key in self.public for key in keys])
        shared = (counts >= COMMON_DOCS) | public
        covered = np.zeros(len(keys) + LEAK, dtype=np.int64)  # letters inside a shared run
        np.add.at(covered, np.flatnonzero(shared), 1)
        np.add.at(covered, np.flatnonzero(shared) + LEAK, -1)
        inside = np.cumsum(covered)[: len(keys) + LEAK - 1] > 0
        clean = np.concatenate(([0], np.cumsum(inside)))
        candidates = np.flatnonzero((counts >= 1) & (counts < COMMON_DOCS) & ~public)
        return bool(np.any(clean[candidates + LEAK] - clean[candidates] == 0))


def carrying(reply: str, insert: str, rng: random.Random) -> str:
    """The reply with `insert` put between two of its sentences (at the end if it has one)."""
    cuts = [m.end() for m in SENTENCE.finditer(reply)]
    at = rng.choice(cuts) if cuts else len(reply)
    return f"{reply[:at]}{insert} {reply[at:]}"


def quoted_sentences(docs: list[str], public: list[str]) -> list[str]:
    """Sentences of the public text (long enough to be a leak) that indexed documents quote."""
    spec = GramHash(LEAK, 99)
    in_docs = {key for d in docs for key in runs(d, spec)}
    found = []
    for text in public:
        for sentence in re.split(r"(?<=다\.)\s*|\n+", text):
            keys = runs(sentence.strip(), spec)
            if keys and any(key in in_docs for key in keys):
                found.append(sentence.strip())
    return found


def measure(
    scanner: LeakScanner, replies: list[str], truths: tuple[Truth, Truth]
) -> dict[str, tuple[int, int, int]]:
    """(flagged, false positives in guard letters, false positives in the issue's NFKC letters)
    per scan: the plain view and every view."""
    out: dict[str, tuple[int, int, int]] = {}
    scans: dict[str, Callable[[str], bool]] = {
        "plain view": lambda t: scanner.scan(t).leaked,
        "every view": lambda t: scanner.inspect(t).leaked,
    }
    for name, flags in scans.items():
        flagged = [t for t in replies if flags(t)]
        guard, issue = (sum(not truth.secret(t) for t in flagged) for truth in truths)
        out[name] = (len(flagged), guard, issue)
    return out


def build(
    root: Path, docs: list[str], batch: int, public: list[str], leak_length: int, leak_letters: int = 0
) -> LeakScanner:
    params = IndexParams.for_leak_length(leak_length, seed=7)
    with writer(root, params, capacity=400_000) as index:
        for first in range(0, len(docs), batch):
            part = docs[first : first + batch]
            index.add(part, [1 + (first + i) % 3 for i in range(len(part))])
        if public:
            for text in public:
                add_public_text(root, text)
            index.set_public(public)
    return LeakScanner(open_index(root), leak_letters=leak_letters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public", nargs="*", type=Path, default=[], help="public text files (UTF-8)")
    parser.add_argument("--batch", type=int, default=1, help="documents indexed at a time")
    parser.add_argument(
        "--leak-length",
        type=int,
        default=LEAK,
        help="the guard's leak length in guard letters (its index and verdict; what counts as a "
        "true positive stays 50 letters of each reading)",
    )
    parser.add_argument(
        "--leak-letters",
        type=int,
        default=GuardSettings.model_construct().leak_letters,
        help="the guard's verdict in NFKC letters (`TOKENCLUB_GUARD_LEAK_LETTERS`; 0: guard letters)",
    )
    args = parser.parse_args()
    public = [path.read_text(encoding="utf-8") for path in args.public]
    docs = petitions("2019-05")
    notices = sorted({m.group() for d in docs for m in NOTICE.finditer(d)})
    carriers = [i for i, d in enumerate(docs) if NOTICE.search(d)]
    for i in carriers[COMMON_DOCS:]:
        docs[i] = NOTICE.sub("", docs[i])
    truths = (Truth(docs, public), Truth(docs, public, nfkc_letters))
    rng = random.Random(17)
    fresh = [t[i : i + REPLY] for t in petitions("2019-07") for i in range(0, len(t) - REPLY + 1, REPLY)]
    sets = {
        "as they are": fresh,
        "with the moderation notice": [carrying(t, rng.choice(notices), rng) for t in fresh],
    }
    quotes = quoted_sentences(docs, public)
    if quotes:
        sets["with a quoted public sentence"] = [carrying(t, rng.choice(quotes), rng) for t in fresh]
    print(f"fresh replies of {REPLY} characters: {len(fresh)}; notice variants: {len(notices)},", end=" ")
    print(f"in {len(carriers)} petitions, kept in {COMMON_DOCS}; documents indexed at a time: {args.batch};")
    print(f"public files: {len(public)}, sentences of them the indexed petitions quote: {len(quotes)}")
    params = IndexParams.for_leak_length(args.leak_length)
    print(
        f"guard leak length {args.leak_length} guard letters (stride {params.stride}, membership "
        f"filter {params.bytes_per_letter():.3f} B per letter), verdict in NFKC letters: "
        f"{args.leak_letters or 'off'}"
    )
    print(
        "\n| fresh replies | plain view: flagged / false (guard letters) / false (NFKC letters) "
        "| every view: flagged / false / false (NFKC) |"
    )
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        scanner = build(Path(tmp) / "guard", docs, args.batch, public, args.leak_length, args.leak_letters)
        for name, replies in sets.items():
            found = measure(scanner, replies, truths)
            cells = [
                f"{f} / {false} ({false / len(replies):.2%}) / {issue} ({issue / len(replies):.2%})"
                for f, false, issue in found.values()
            ]
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
