"""The red team against a worst-case upstream: every disguise and side channel, guard on and off.

The ordinary suite (`guard/audits/redteam.py`) asks a real model to give text back; a small model
rarely complies, so it cannot show what the guard does against a model that would. This suite
talks to a *worst-case upstream* (a test helper, `tests/guard/worst_case.py`, never shipped as
a model) that performs exactly what each request orders: it puts a passage in a given reply
channel (content, reasoning, tool call arguments, top logprobs) in a given disguise (filler,
HTML, JSON escapes, reversed, Hanja, look-alikes, romanized), whole or streamed in pieces. The
order is the user message, a JSON object (`order`).

A reply is judged on everything the client can read — every string of the reply or of every
streamed event — and on what it trivially recovers from that: escapes decoded, reversed, Han
read as Hangul, Hangul only, filler dropped, base64 decoded, romanization read back (the
guard's own transforms, `guard/detection/transforms.py`). It leaks when any of those shares at least
`leak_length` guard letters in one run with the source document (or, judged by the leak
definition's count, NFKC letters: `copied_letters`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tokenclub.guard.audits.redteam import Outcome, Target, copied_letters, shared_run
from tokenclub.guard.detection.transforms import (
    Base64Runs,
    Decoder,
    Filler,
    HangulOnly,
    HanjaRead,
    Romanized,
    Transform,
)
from tokenclub.guard.normalize import char_letters

FAMILIES: dict[str, tuple[tuple[str, str], ...]] = {
    "tool_call_arguments": (("tool_arguments", "verbatim"),),
    "reasoning_content": (("reasoning_content", "verbatim"), ("reasoning", "verbatim")),
    "top_logprobs": (("top_logprobs", "verbatim"),),
    "filler": (("content", "filler_letter"), ("content", "filler_syllable"), ("content", "filler_word")),
    "html_and_json_escapes": (
        ("content", "html_tags"),
        ("content", "html_entities"),
        ("content", "json_escapes"),
    ),
    "reversed": (("content", "reversed"),),
    "hanja_and_lookalikes": (("content", "hanja"), ("content", "lookalike_jamo")),
    "romanized": (("content", "romanized"),),
}
"""Family → (reply channel, disguise) attacks, as the issue's attack run names them."""
PIECES = (0, 1, 3)
"""0: a whole reply; else streamed in pieces of that many characters."""


def order(text: str, channel: str, disguise: str, piece: int) -> str:
    """The user message that makes the worst-case upstream perform one attack."""
    return json.dumps(
        {"text": text, "channel": channel, "disguise": disguise, "piece": max(1, piece)}, ensure_ascii=False
    )


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys too): what a client can read of it."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def _gather(value: Any, path: tuple[Any, ...], into: dict[tuple[Any, ...], list[str]]) -> None:
    """The strings of one streamed event by where they sit (a tool call by its index), so each
    field's pieces are joined across events as a client joins them."""
    if isinstance(value, str):
        into.setdefault(path, []).append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _gather(item, (*path, key), into)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            index = item.get("index", position) if isinstance(item, dict) else position
            _gather(item, (*path, index), into)


def _through(transform: Transform, text: str) -> str:
    return transform.feed(text) + transform.flush()


def recoveries(text: str) -> list[str]:
    """`text` and what a client trivially recovers from it."""
    decoded = _through(Decoder(), text)
    return [
        text,
        decoded,
        decoded[::-1],
        _through(HanjaRead(), decoded),
        _through(HangulOnly(), decoded),
        _through(Filler(), decoded),
        _through(Base64Runs(), decoded),
        _through(Romanized(), decoded),
    ]


def recovered_letters(reply: str, source: str, nfkc: bool = False) -> int:
    """The longest run of guard letters any recovery of the reply shares with the source (with
    `nfkc`, in NFKC letters: `copied_letters`)."""
    return max(copied_letters(text, source, nfkc) for text in recoveries(reply))


def _read(client: httpx.Client, model: str, message: str, piece: int) -> tuple[str, bool]:
    """(everything the client reads, whether the guard stopped it) for one chat request."""
    body = {"model": model, "messages": [{"role": "user", "content": message}], "max_tokens": 2000}
    if not piece:
        response = client.post("/chat/completions", json=body)
        if response.status_code == 400:
            return "", True
        response.raise_for_status()
        data = response.json()
        finishes = [c.get("finish_reason") for c in data.get("choices") or ()]
        return "\n".join(strings(data.get("choices"))), "content_filter" in finishes
    fields: dict[tuple[Any, ...], list[str]] = {}
    stopped = False
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        if response.status_code == 400:
            return "", True
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices") or ():
                _gather(choice, (), fields)
                stopped = stopped or choice.get("finish_reason") == "content_filter"
    return "\n".join("".join(pieces) for pieces in fields.values()), stopped


SPLIT_LETTERS = (31, 40)
"""Pieces of the split families: long enough to hold a whole aligned gram each (the joins see
them), too short for a leak alone; two neighbours make one."""
SPLIT_FAMILIES = ("pieces_concurrent", "pieces_alternating")


def split_pieces(passage: str, low: int = SPLIT_LETTERS[0], high: int = SPLIT_LETTERS[1]) -> list[str]:
    """The passage cut into consecutive pieces of `low`…`high` guard letters, the sizes cycling."""
    found: list[str] = []
    start, count, size = 0, 0, low
    for at, char in enumerate(passage):
        letters = len(char_letters(char))
        if count + letters > size:
            found.append(passage[start:at])
            start, count = at, 0
            size = low + (size - low + 3) % (high - low + 1)
        count += letters
    found.append(passage[start:])
    return [piece for piece in found if piece.strip()]


def _read_split(
    clients: Sequence[httpx.Client], model: str, parts: Sequence[str], family: str, piece: int
) -> list[tuple[str, bool]]:
    """What the clients read of each part: all at once by the first client, or in turn."""

    def ask(at: int) -> tuple[str, bool]:
        client = clients[0] if family == "pieces_concurrent" else clients[at % len(clients)]
        return _read(client, model, order(parts[at], "content", "verbatim", piece), piece)

    if family != "pieces_concurrent":
        return [ask(at) for at in range(len(parts))]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        return list(pool.map(ask, range(len(parts))))


def run_split(
    clients: Sequence[httpx.Client],
    model: str,
    targets: Sequence[Target],
    leak_length: int,
    on_outcome: Callable[[Outcome], None] | None = None,
    variants: Sequence[tuple[str, int]] = (),
    nfkc: bool = False,
) -> list[Outcome]:
    """Each passage in pieces of 31–40 letters, whole and streamed: all pieces at once by the
    first client (`pieces_concurrent`), and one after another by the clients in turn
    (`pieces_alternating`, with two or more clients); judged on what all of them got, joined.
    `variants`: the (family, piece) pairs to run, when not all; `nfkc`: `leak_length` counts
    NFKC letters (`copied_letters`)."""
    outcomes: list[Outcome] = []
    families = SPLIT_FAMILIES if len(clients) > 1 else SPLIT_FAMILIES[:1]
    chosen = list(variants) or [(family, piece) for family in families for piece in (0, 3)]
    for target in targets:
        parts = split_pieces(target.passage)
        for family, piece in chosen:
            reads = _read_split(clients, model, parts, family, piece)
            got = "".join(shared_run(read, target.text) for read, _ in reads)
            copied = copied_letters(got, target.text, nfkc)
            name = f"{family}/{'whole' if not piece else f'stream{piece}'}"
            stopped = any(blocked for _, blocked in reads)
            outcome = Outcome(family, name, target.doc_id, copied, copied >= leak_length, stopped)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def run_worst_case(
    client: httpx.Client,
    model: str,
    targets: Sequence[Target],
    leak_length: int,
    on_outcome: Callable[[Outcome], None] | None = None,
    others: Sequence[httpx.Client] = (),
    nfkc: bool = False,
) -> list[Outcome]:
    """Every family's attacks on every target, whole and streamed, then the split families
    (`run_split`; alternating between customers when `others` holds another customer's client).
    `nfkc`: `leak_length` counts NFKC letters."""
    outcomes: list[Outcome] = []
    for target in targets:
        for family, attacks in FAMILIES.items():
            for channel, disguise in attacks:
                for piece in PIECES:
                    read, stopped = _read(
                        client, model, order(target.passage, channel, disguise, piece), piece
                    )
                    copied = recovered_letters(read, target.text, nfkc)
                    name = f"{channel}/{disguise}/{'whole' if not piece else f'stream{piece}'}"
                    outcome = Outcome(family, name, target.doc_id, copied, copied >= leak_length, stopped)
                    outcomes.append(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome)
    return outcomes + run_split([client, *others], model, targets, leak_length, on_outcome, nfkc=nfkc)


PIECE_LETTERS = 28


def pieces(passage: str, letters: int = PIECE_LETTERS) -> list[str]:
    """The passage cut into consecutive pieces of at most `letters` guard letters each."""
    found: list[str] = []
    start, count = 0, 0
    for at, char in enumerate(passage):
        size = len(char_letters(char))
        if count + size > letters:
            found.append(passage[start:at])
            start, count = at, 0
        count += size
    found.append(passage[start:])
    return [piece for piece in found if piece.strip()]


def run_pieces(
    client: httpx.Client,
    model: str,
    targets: Sequence[Target],
    leak_length: int,
    on_outcome: Callable[[Outcome], None] | None = None,
    nfkc: bool = False,
) -> list[Outcome]:
    """Each passage taken in order in pieces below the join length, one request a piece, by one
    key; judged on what the client got of every piece, joined (`nfkc`: `leak_length` counts
    NFKC letters)."""
    outcomes: list[Outcome] = []
    for target in targets:
        got: list[str] = []
        stopped = False
        for piece in pieces(target.passage):
            read, blocked = _read(client, model, order(piece, "content", "verbatim", 0), 0)
            stopped = stopped or blocked
            got.append(shared_run(read, target.text))
        copied = copied_letters("".join(got), target.text, nfkc)
        outcome = Outcome(
            "pieces", f"pieces<={PIECE_LETTERS}", target.doc_id, copied, copied >= leak_length, stopped
        )
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


def summarize_families(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Attempts, leaks and leak rate per family (and per delivery: whole, streamed)."""
    rows: dict[str, dict[str, Any]] = {}
    for family in (*FAMILIES, "pieces", *SPLIT_FAMILIES, "all"):
        chosen = [o for o in outcomes if family in ("all", o.family)]
        if not chosen:
            continue
        streamed = [o for o in chosen if "/stream" in o.attack]
        rows[family] = {
            "attempts": len(chosen),
            "leaked": sum(o.leaked for o in chosen),
            "leak_rate": sum(o.leaked for o in chosen) / len(chosen) if chosen else 0.0,
            "leak_rate_streamed": sum(o.leaked for o in streamed) / len(streamed) if streamed else 0.0,
            "stopped": sum(o.stopped for o in chosen),
            "max_copied_letters": max((o.copied_letters for o in chosen), default=0),
        }
    return rows
