"""The guard's canonical views: leak rate per disguise family, false positives and scan cost.

Indexed: the 2019-05 petitions (dealt to three partners). Attacks: 32 passages of 100
characters per family, each disguised by the test helpers (`tests/guard/disguise.py`, the same
disguises the worst-case upstream performs) inside a framing sentence. Guard off means the
reply goes out as it is (every attack leaks: the disguises are reversible); guard on is
measured three ways: the whole reply (`LeakScanner.inspect`, redact policy: the copy is cut
out), streamed one character per call and three characters per call (`LeakScanner.watch`,
block policy). An attack leaks when the client gets the whole disguised copy, or so much of it
that the share received times the passage's guard letters reaches 50 (what the client can
undo of a partial disguised copy). The reference in the same run is
the plain-view scanner (`LeakScanner.scan` / `stream`), as the guard was before the views.

False positives: the 2019-07 petitions (a month not indexed) cut into 750-character replies
(about 300 tokens at 2.5 characters a token), plain view against every view. Cost: median ms
per 1,000 tokens over those replies, whole and streamed 3 characters (about one token) per call
(every view scanned at each call, as before, against every view scanned in batches of `BATCH`
characters growing to `BATCH_LIMIT`), the median text held back while streaming (tokens of 2.5
characters), and the cost of a short reply (the first 25 characters of each).

`--leak-letters N` gives the guard a verdict in N NFKC letters (`TOKENCLUB_GUARD_LEAK_LETTERS`):
the families are judged by that count (the received share times the passage's NFKC letters),
and the cost table gains the same scans under that verdict, every view, beside those without.

Run: ``.venv/bin/python bench/bench_guard_views.py [--leak-letters N]`` (a few minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.guard.disguise import ALL_DISGUISES

from bench_guard_fp import nfkc_text
from tokenclub.guard.config import GuardSettings
from tokenclub.guard.detection.scanner import LeakScanner, StreamScanner
from tokenclub.guard.detection.views import BATCH, BATCH_LIMIT, ViewScanner
from tokenclub.guard.indexing.index import IndexParams, open_index, writer
from tokenclub.guard.normalize import guard_text

CORPORA = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "petitions"
PASSAGES = 32
CHARS_PER_TOKEN = 2.5
INTRO = "네, 요청하신 부분을 옮겨 드립니다. "
OUTRO = " 이상입니다."
SHORT = 25  # characters: a short reply (about 10 tokens)


def petitions(month: str) -> list[str]:
    with (CORPORA / f"petitions_{month}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line)["content"] for line in fh]


def leaked(out: str, disguised: str, passage: str, leak_length: int = 50, nfkc: bool = False) -> bool:
    """Whether what the client got of the disguised copy recovers a leak: the whole copy, or a
    share of it (the part received in place, right after the intro) that, times the passage's
    guard letters (`nfkc`: NFKC letters), reaches `leak_length`."""
    letters = len(nfkc_text(passage) if nfkc else guard_text(passage))
    if disguised in out:
        return letters >= leak_length
    got = out[len(INTRO) :]
    received = next((i for i, (a, b) in enumerate(zip(got, disguised, strict=False)) if a != b), len(got))
    return received / len(disguised) * letters >= leak_length


def streamed(scanner: LeakScanner, reply: str, size: int) -> str:
    stream = scanner.watch("block")
    out = []
    for start in range(0, len(reply), size):
        out.append(stream.feed(reply[start : start + size]))
        if stream.blocked:
            break
    out.append(stream.finish())
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--leak-letters",
        type=int,
        default=GuardSettings.model_construct().leak_letters,
        help="the verdict in NFKC letters (0: off)",
    )
    args = parser.parse_args()
    length, nfkc = args.leak_letters or 50, bool(args.leak_letters)
    docs = petitions("2019-05")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "guard"
        with writer(root, IndexParams.for_leak_length(50, seed=7), capacity=400_000) as index:
            index.add(docs, [1 + i % 3 for i in range(len(docs))])
        scanner = LeakScanner(open_index(root))
        counted = LeakScanner(open_index(root), leak_letters=args.leak_letters)
        rng = random.Random(13)
        long_docs = [d for d in docs if len(d) >= 400]
        starts = [(d, rng.randrange(len(d) - 100)) for d in rng.sample(long_docs, PASSAGES)]
        passages = [d[s : s + 100] for d, s in starts]
        columns = (
            "guard off",
            "plain view, whole",
            "every view, whole",
            "streamed 1 char",
            "streamed 3 chars",
        )
        print("| family | " + " | ".join(columns) + " |")
        print("|---|---|---|---|---|---|")
        for name, disguise in ALL_DISGUISES.items():
            disguised = [disguise(p) for p in passages]
            replies = [INTRO + d + OUTRO for d in disguised]
            cases = list(zip(replies, disguised, passages, strict=True))
            plain = sum(leaked(counted.scan(r).redacted, d, p, length, nfkc) for r, d, p in cases)
            whole = sum(leaked(counted.inspect(r).redacted, d, p, length, nfkc) for r, d, p in cases)
            one = sum(leaked(streamed(counted, r, 1), d, p, length, nfkc) for r, d, p in cases)
            three = sum(leaked(streamed(counted, r, 3), d, p, length, nfkc) for r, d, p in cases)
            rates = [f"{n / len(replies):.1%}" for n in (len(replies), plain, whole, one, three)]
            print(f"| {name} | " + " | ".join(rates) + " |")

        fresh = [t[i : i + 750] for t in petitions("2019-07") for i in range(0, len(t) - 749, 750)]
        plain_fp = sum(counted.scan(t).leaked for t in fresh)
        views_fp = sum(counted.inspect(t).leaked for t in fresh)
        print(f"\nfresh replies of 750 characters: {len(fresh)}")
        print(f"flagged: plain view {plain_fp}, every view {views_fp}")

        def per_1000(seconds: float, text: str) -> float:
            return seconds * 1000 / (len(text) / CHARS_PER_TOKEN) * 1000

        sample = fresh[:300]
        names = ("scan", "inspect", "stream", "watch per call", "watch", "inspect, NFKC", "watch, NFKC")
        timings: dict[str, list[float]] = {name: [] for name in names}
        held: dict[str, list[float]] = {name: [] for name in names[2:5]}
        for text in sample:
            for name, run in (
                ("scan", scanner.scan),
                ("inspect", scanner.inspect),
                ("inspect, NFKC", counted.inspect),
            ):
                started = time.perf_counter()
                run(text)
                timings[name].append(per_1000(time.perf_counter() - started, text))
            started = time.perf_counter()
            chunked(counted, "watch", text)
            timings["watch, NFKC"].append(per_1000(time.perf_counter() - started, text))
            for name in names[2:5]:
                started = time.perf_counter()
                chunked(scanner, name, text)
                timings[name].append(per_1000(time.perf_counter() - started, text))
                chunked(scanner, name, text, held[name])  # again, untimed, to see what it holds back
        medians = {k: statistics.median(v) for k, v in timings.items()}
        print("\n| ms per 1,000 tokens (median) | plain view (reference) | every view | ratio |")
        print("|---|---|---|---|")
        for label, reference, every in (
            ("whole reply", "scan", "inspect"),
            (
                "streamed, 3 characters a call, every view scanned per call (before)",
                "stream",
                "watch per call",
            ),
            (
                f"streamed 3 characters a call, scanned in batches of {BATCH} growing to {BATCH_LIMIT}",
                "stream",
                "watch",
            ),
            ("whole reply, verdict in NFKC letters against without", "inspect", "inspect, NFKC"),
            ("streamed in batches, verdict in NFKC letters against without", "watch", "watch, NFKC"),
        ):
            ratio = medians[every] / medians[reference]
            print(f"| {label} | {medians[reference]:.2f} | {medians[every]:.2f} | {ratio:.2f} |")
        batched = medians["watch"] / medians["watch per call"]
        print(f"\nstreamed every view, batched / per call: {batched:.2f};", end=" ")
        print(f"streamed batched / whole every view: {medians['watch'] / medians['inspect']:.2f}")
        delay = {k: statistics.median(v) for k, v in held.items()}
        print("median tokens held back while streaming: plain view", end=" ")
        print(f"{delay['stream']:.1f}, every view per call {delay['watch per call']:.1f},", end=" ")
        print(f"every view batched {delay['watch']:.1f}")

        short = [t[:SHORT] for t in sample]
        costs: dict[str, list[float]] = {"scan": [], "inspect": [], "watch": []}
        for text in short:
            for name, run in (("scan", scanner.scan), ("inspect", scanner.inspect)):
                started = time.perf_counter()
                run(text)
                costs[name].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            chunked(scanner, "watch", text)
            costs["watch"].append((time.perf_counter() - started) * 1000)
        short_ms = {k: statistics.median(v) for k, v in costs.items()}
        print(f"\nshort replies ({SHORT} characters), ms per reply (median): plain view whole", end=" ")
        print(f"{short_ms['scan']:.3f}, every view whole {short_ms['inspect']:.3f},", end=" ")
        print(f"every view streamed 3 characters a call {short_ms['watch']:.3f}")


def chunked(scanner: LeakScanner, name: str, text: str, held: list[float] | None = None) -> str:
    """`text` streamed 3 characters a call through the scanner `name` names; with `held`, the
    tokens held back after each call go to it (a timed run keeps no such count: it would be a
    sixth of what is timed)."""
    if name == "stream":
        stream: StreamScanner | ViewScanner = scanner.stream("block")
    else:
        stream = scanner.watch("block")
        if name == "watch per call":
            stream.batch = stream.batch_limit = 1
    out: list[str] = []
    if held is None:
        for start in range(0, len(text), 3):
            out.append(stream.feed(text[start : start + 3]))
    else:
        sent = 0
        for start in range(0, len(text), 3):
            out.append(stream.feed(text[start : start + 3]))
            sent += len(out[-1])
            held.append((min(start + 3, len(text)) - sent) / CHARS_PER_TOKEN)
    out.append(stream.finish())
    return "".join(out)


if __name__ == "__main__":
    main()
