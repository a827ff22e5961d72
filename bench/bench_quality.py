"""False drops and throughput of the per-document curation steps on real and junk text.

Real documents: the Blue House petitions (every one written by a person), the two National
Assembly PDFs (text by pypdfium2) and 30-sentence passages of the UD Korean KAIST treebank.
A real document of 50 or more eojeol (Gopher's minimum length) that the language or quality
filter drops is a false drop. Junk: generated boilerplate pages, keyword spam, number tables,
repeated lines, menus and copy-paste pages, all of which should be dropped.

Run: ``.venv/bin/python bench/bench_quality.py`` (one process: MB/s are per core).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
from rich.console import Console
from rich.table import Table

from tokenclub.curate.language import LanguageFilter
from tokenclub.curate.normalize import normalize_text
from tokenclub.curate.pii import scrub_pii
from tokenclub.curate.quality import QualityFilter

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
REASONABLY_LONG = 50


@dataclass
class Corpus:
    name: str
    raw: list[str]
    junk: bool = False
    texts: list[str] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)


def petitions() -> list[str]:
    return [
        json.loads(line)["content"]
        for path in sorted((CORPORA / "petitions").glob("*.jsonl"))
        for line in path.open(encoding="utf-8")
    ]


def pdfs() -> list[str]:
    texts = []
    for path in sorted((CORPORA / "samples" / "pdf").glob("*.pdf")):
        document = pdfium.PdfDocument(path)
        texts.append("\n".join(page.get_textpage().get_text_range() for page in document))
        document.close()
    return texts


def ud_sentences() -> list[str]:
    return [
        line.removeprefix("# text = ").strip()
        for path in sorted((CORPORA / "ud-korean-kaist").glob("*.conllu"))
        for line in path.open(encoding="utf-8")
        if line.startswith("# text = ")
    ]


def passages(sentences: list[str], size: int = 30) -> list[str]:
    return ["\n".join(sentences[i : i + size]) for i in range(0, len(sentences), size)]


def junk(sentences: list[str], count: int = 20) -> Iterator[str]:
    """Pages no partner should be paid for, `count` of each kind with random content."""
    rng = random.Random(20240501)
    words = [
        "서울",
        "정부",
        "시장",
        "경제",
        "사회",
        "문화",
        "교육",
        "정책",
        "지원",
        "확대",
        "발표",
        "계획",
        "추진",
        "기업",
        "지역",
        "주민",
    ]
    spam = [
        "카지노사이트",
        "바카라사이트",
        "온라인카지노",
        "슬롯머신",
        "토토사이트",
        "먹튀검증",
        "안전놀이터",
        "메이저사이트",
    ]
    notices = [
        "본문 바로가기",
        "로그인",
        "회원가입",
        "이 사이트는 쿠키를 사용합니다. 계속 이용하시면 쿠키 사용에 동의하는 것으로 간주됩니다.",
        "We use cookies to improve your experience. Accept all cookies?",
        "자바스크립트를 활성화해야 이 페이지를 이용할 수 있습니다.",
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
        "이용약관 개인정보처리방침",
        "Copyright ⓒ 2024 All rights reserved.",
        "공유하기",
        "맨 위로",
    ]
    for _ in range(count):
        sentence = " ".join(rng.choices(words, k=8)) + "."
        yield "\n".join([*rng.sample(notices, 8), sentence])
        yield " ".join(rng.choices(spam, k=rng.randint(100, 400)))
        yield "\n".join(" ".join(f"{rng.randint(0, 99999):,}" for _ in range(8)) for _ in range(30))
        yield "\n".join([f"{sentence} 지금 바로 상담 신청하세요!"] * rng.randint(10, 40))
        yield "\n".join(f"• {rng.choice(words)}" for _ in range(40))
        yield "\n".join(
            f"{rng.choice(words)}\t{rng.randint(1, 999) * 100:,}원\t재고 있음\t{rng.choice(words)}"
            for _ in range(30)
        )
        page = rng.sample(sentences, 8)
        yield " ".join(page * 3)
        yield " ".join(f"{s} 지금 바로 구매하세요 최저가 보장!" for s in page)


FINEWEB_RULES = {
    "lines ending in punctuation (≥ 0.12)": "punct",
    "short lines ≤ 30 chars (≤ 0.67)": "short",
    "chars in duplicate lines (≤ 0.01)": "dup",
    "newlines per word (≤ 0.3)": "newlines",
}


def fineweb_line_rules(text: str) -> dict[str, float]:
    """The line statistics FineWeb's quality filter thresholds (limits in the column names)."""
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    seen: set[str] = set()
    duplicate = 0
    for line in lines:
        duplicate += len(line) if line in seen else 0
        seen.add(line)
    values = {
        "punct": sum(line[-1] in ".?!…。\"'”’)" for line in lines) / len(lines),
        "short": sum(len(line) <= 30 for line in lines) / len(lines),
        "dup": duplicate / sum(map(len, lines)),
        "newlines": text.count("\n") / len(text.split()),
    }
    return {name: values[key] for name, key in FINEWEB_RULES.items()}


def timed(function: Callable[[str], object], texts: list[str]) -> float:
    """MB/s of UTF-8 input through one step, best of three runs."""
    size = sum(len(t.encode()) for t in texts) / 1e6
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for text in texts:
            function(text)
        best = min(best, time.perf_counter() - start)
    return size / best


def main() -> None:
    console = Console()
    sentences = ud_sentences()
    corpora = [
        Corpus("petitions", petitions()),
        Corpus("NA PDFs", pdfs()),
        Corpus("UD passages", passages(sentences)),
        Corpus("junk", list(junk(sentences)), junk=True),
    ]
    language, quality = LanguageFilter(), QualityFilter()
    for corpus in corpora:
        corpus.texts = [normalize_text(t) for t in corpus.raw]
        corpus.reasons = [language.reason_to_drop(t) or quality.reason_to_drop(t) for t in corpus.texts]

    rules = sorted({r for c in corpora for r in c.reasons if r is not None})
    drops = Table(title="Documents dropped per rule (normalized; language filter, then quality)")
    drops.add_column("", no_wrap=True)
    for corpus in corpora:
        drops.add_column(corpus.name, justify="right")
    counts = [Counter(c.reasons) for c in corpora]
    drops.add_row("documents", *(str(len(c.texts)) for c in corpora))
    for rule in rules:
        drops.add_row(rule, *(str(n[rule]) for n in counts))
    drops.add_row("kept", *(str(n[None]) for n in counts), end_section=True)
    cells = []
    for corpus in corpora:
        if corpus.junk:
            cells.append("-")
            continue
        long = [
            r for t, r in zip(corpus.texts, corpus.reasons, strict=True) if len(t.split()) >= REASONABLY_LONG
        ]
        false = sum(r is not None for r in long)
        cells.append(f"{false} / {len(long)} = {false / len(long):.2%}")
    drops.add_row(f"false drops (≥ {REASONABLY_LONG} eojeol)", *cells)
    console.print(drops)
    for corpus in corpora:
        if not corpus.junk:
            for text, reason in zip(corpus.texts, corpus.reasons, strict=True):
                if reason is not None and len(text.split()) >= REASONABLY_LONG:
                    console.print(f"  {corpus.name}: {reason}: {text[:30]!r}…", highlight=False)

    fineweb = Table(title="FineWeb's line rules (datatrove defaults) on the PDFs: raw text / normalized")
    fineweb.add_column("PDF", no_wrap=True)
    for rule in FINEWEB_RULES:
        fineweb.add_column(rule, justify="right")
    for index, (raw, text) in enumerate(zip(corpora[1].raw, corpora[1].texts, strict=True)):
        before, after = fineweb_line_rules(raw), fineweb_line_rules(text)
        fineweb.add_row(f"#{index + 1}", *(f"{before[r]:.2f} / {after[r]:.2f}" for r in FINEWEB_RULES))
    console.print(fineweb)

    real_raw = [t for c in corpora if not c.junk for t in c.raw]
    real = [t for c in corpora if not c.junk for t in c.texts]
    pdf_raw, pdf_text = corpora[1].raw, corpora[1].texts
    speed = Table(title="Throughput, one core (MB/s of UTF-8 input)")
    speed.add_column("step")
    speed.add_column("all real text", justify="right")
    speed.add_column("PDF text only", justify="right")
    for name, function, inputs, pdf_inputs in [
        ("normalize", normalize_text, real_raw, pdf_raw),
        ("language", language.reason_to_drop, real, pdf_text),
        ("quality", quality.reason_to_drop, real, pdf_text),
        ("pii", scrub_pii, real, pdf_text),
    ]:
        speed.add_row(name, f"{timed(function, inputs):.1f}", f"{timed(function, pdf_inputs * 20):.1f}")
    console.print(speed)
    size = sum(len(t.encode()) for t in real_raw) / 1e6
    console.print(f"real text: {len(real_raw)} documents, {size:.1f} MB")


if __name__ == "__main__":
    main()
