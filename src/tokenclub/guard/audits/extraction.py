"""How much of the corpus a model gives back: the prefix-prompting extraction test.

For a sample of accepted documents, the model gets `prefix_tokens` tokens of a document
(counted with the pinned tokenizer, at a random position) and continues greedily; the
continuation is compared with the document's next `suffix_tokens` tokens on guard letters, so
spacing and punctuation do not matter. *Exact*: the continuation reproduces the suffix letter
for letter. *Near-exact*: at least `NEAR_EXACT` similar (difflib's matching-blocks ratio), exact
ones included — memorisation with a few letters changed. Run against the model directly it
measures memorisation; through the gateway it measures what the guard lets out.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from tokenizers import Tokenizer

from tokenclub.guard.normalize import guard_text

T = TypeVar("T")

NEAR_EXACT = 0.9


@dataclass(frozen=True, slots=True)
class Probe:
    doc_id: str
    partner_id: int
    prefix: str
    suffix: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    probe: Probe
    continuation: str
    finish_reason: str
    similarity: float

    @property
    def exact(self) -> bool:
        return self.similarity == 1.0

    @property
    def near_exact(self) -> bool:
        return self.similarity >= NEAR_EXACT


@dataclass(frozen=True, slots=True)
class AuditReport:
    results: tuple[ProbeResult, ...]

    def as_dict(self) -> dict[str, Any]:
        count = len(self.results)
        exact = sum(r.exact for r in self.results)
        near = sum(r.near_exact for r in self.results)
        blocked = sum(r.finish_reason == "content_filter" for r in self.results)
        return {
            "samples": count,
            "exact": exact,
            "near_exact": near,
            "blocked": blocked,
            "exact_rate": exact / count if count else 0.0,
            "near_exact_rate": near / count if count else 0.0,
            "mean_similarity": sum(r.similarity for r in self.results) / count if count else 0.0,
        }


def similarity(continuation: str, suffix: str) -> float:
    """How much of the true suffix the continuation reproduces, on guard letters (1.0: all)."""
    target = guard_text(suffix)
    got = guard_text(continuation)[: len(target)]
    if not target:
        return 0.0
    if got == target:
        return 1.0
    return difflib.SequenceMatcher(None, got, target, autojunk=False).ratio()


def reservoir_sample(items: Iterable[T], count: int, rng: random.Random) -> list[T]:
    """A uniform sample of `count` items in one pass, so a corpus of any size is never held whole."""
    chosen: list[T] = []
    for seen, item in enumerate(items, start=1):
        if len(chosen) < count:
            chosen.append(item)
        elif (slot := rng.randrange(seen)) < count:
            chosen[slot] = item
    return chosen


def make_probes(
    documents: Iterable[dict[str, Any]],
    tokenizer: Tokenizer,
    count: int,
    prefix_tokens: int = 50,
    suffix_tokens: int = 50,
    seed: int = 0,
) -> list[Probe]:
    """Up to `count` probes from documents long enough, sampled uniformly (reservoir) by `seed`."""
    rng = random.Random(seed)
    long_enough = (d for d in documents if int(d.get("tokens") or 0) >= prefix_tokens + suffix_tokens)
    chosen = reservoir_sample(long_enough, count, rng)
    probes = []
    for doc in chosen:
        offsets = tokenizer.encode(doc["text"], add_special_tokens=False).offsets
        if len(offsets) < prefix_tokens + suffix_tokens:
            continue
        start = rng.randrange(len(offsets) - prefix_tokens - suffix_tokens + 1)
        cut = offsets[start + prefix_tokens][0]
        text = doc["text"]
        probes.append(
            Probe(
                doc_id=str(doc["doc_id"]),
                partner_id=int(doc["partner_id"]),
                prefix=text[offsets[start][0] : cut],
                suffix=text[cut : offsets[start + prefix_tokens + suffix_tokens - 1][1]],
            )
        )
    return probes


def run_probe(client: httpx.Client, model: str, probe: Probe, max_tokens: int) -> ProbeResult:
    """One greedy completion of the probe's prefix."""
    response = client.post(
        "/completions",
        json={"model": model, "prompt": probe.prefix, "max_tokens": max_tokens, "temperature": 0},
    )
    response.raise_for_status()
    choice = response.json()["choices"][0]
    text = str(choice.get("text") or "")
    return ProbeResult(probe, text, str(choice.get("finish_reason") or ""), similarity(text, probe.suffix))


def audit_memorization(
    client: httpx.Client,
    model: str,
    probes: Iterable[Probe],
    max_tokens: int,
    on_probe: Callable[[ProbeResult], None] | None = None,
) -> AuditReport:
    """Prompt the model (or the gateway) behind `client` with every probe."""
    results = []
    for probe in probes:
        results.append(run_probe(client, model, probe, max_tokens))
        if on_probe is not None:
            on_probe(results[-1])
    return AuditReport(tuple(results))


def client_for(base_url: str, api_key: str | None = None, timeout_s: float = 120.0) -> httpx.Client:
    """An HTTP client for an OpenAI-compatible base URL (ending in /v1)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)
