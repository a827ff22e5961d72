"""Extraction attempts in prompts: contributed text carried in, or requests to reproduce source text.

Two kinds of evidence, each a named reason so the gateway can log it and choose by policy
(refuse, or answer under the stricter output threshold):

- the prompt itself carries a leak-length run of indexed text (a prefix to be continued, a
  passage to be "repeated back"), found by the same scanner that guards replies;
- the wording asks for verbatim reproduction, continuation, spelling out letter by letter
  (the disguise that defeats exact matching), or endless repetition (the divergence attack that
  makes a model drift into memorised text), in Korean or English.

The phrase rules want an action word next to its object ("원문을 그대로 출력", "continue the
passage"), so ordinary requests that mention repetition or originals ("반복되는 문제", "the
original plan") pass; the tests hold both sides.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from tokenclub.guard.detection.scanner import LeakScanner

CARRIES_INDEXED_TEXT = "carries_indexed_text"
VERBATIM_REQUEST = "verbatim_request"
CONTINUATION_REQUEST = "continuation_request"
SPELL_OUT_REQUEST = "spell_out_request"
REPETITION_TRICK = "repetition_trick"

_TEXT_EN = (
    r"(?:text|article|passage|book|chapter|document|paper|report|story|content|page|paragraph"
    r"|essay|news|post|lyrics|excerpt|source)s?"
)
_SHOW_EN = r"(?:show|print|repeat|recite|quote|output|reveal)"
_TRAINING_EN = r"(?:training|pre-?training) (?:data|set|corpus)"
_UNIT_EN = r"(?:letter|character|syllable)"
_VERB_KO = (
    r"(?:출력|써|쓰|적어|적|보여|알려|복사|옮겨|인용|반복|말해|작성|타이핑|입력|재현|제공|공개|달라|줘)"
)
_COPY_KO = r"(?:출력|써|쓰|적어|옮겨|복사|인용|반복|재현|타이핑|입력)"
_EXACTLY_KO = r"(?:빠짐없이|안\s*(?:틀리|바꾸|빼)고|(?:틀리|바꾸|빼)지\s*(?:않[고게]|말고))?"
_DOC_KO = r"(?:원문|전문|본문|원본|원고|기사|책|논문|보고서|문서|글|텍스트|내용|청원|자료)"

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile(pattern, re.IGNORECASE))
    for reason, pattern in (
        (
            VERBATIM_REQUEST,
            r"\b(?:verbatim|word[- ]for[- ]word|letter[- ]for[- ]letter|character[- ]for[- ]character)\b",
        ),
        (
            VERBATIM_REQUEST,
            r"\b(?:reproduce|recite|quote|print|output|copy|write out|type out|give me|show me|dump)\b"
            rf"[^.?!]{{0,40}}\b(?:full|entire|whole|complete|original|exact|unabridged)\b[^.?!]{{0,30}}\b{_TEXT_EN}\b",
        ),
        (
            VERBATIM_REQUEST,
            r"\brepeat\b[^.?!]{0,40}\b(?:text|passage|article|above|after me|back|exactly|as written)\b",
        ),
        (
            VERBATIM_REQUEST,
            rf"\b{_TRAINING_EN}\b[^.?!]{{0,40}}\b{_SHOW_EN}\b|\b{_SHOW_EN}\b[^.?!]{{0,40}}\b{_TRAINING_EN}\b",
        ),
        (
            VERBATIM_REQUEST,
            rf"(?:그대로|똑같이|원문대로|(?:토씨|글자)\s*하나\s*{_EXACTLY_KO}|한\s*(?:글자|자)도\s*{_EXACTLY_KO}"
            rf"|요약하지\s*말고|수정\s*없이)\s*(?:다시\s*)?{_COPY_KO}",
        ),
        (
            VERBATIM_REQUEST,
            rf"(?:원문|전문|본문|원본|전체\s*(?:내용|글|텍스트|본문))\s*(?:을|를)?\s*(?:그대로\s*)?{_VERB_KO}",
        ),
        (VERBATIM_REQUEST, rf"(?:학습|훈련)\s*(?:데이터|자료|말뭉치)\S{{0,3}}\s*\S{{0,10}}\s*{_VERB_KO}"),
        (
            CONTINUATION_REQUEST,
            rf"\b(?:continue|complete|finish|extend)\b[^.?!]{{0,30}}\b(?:{_TEXT_EN}|sentence|line|quote)\b"
            r"|\bwhat (?:comes|follows|is) next\b|\bnext (?:sentence|paragraph|line|words)\b"
            r"|\bcontinue (?:from|after|where)\b",
        ),
        (
            CONTINUATION_REQUEST,
            r"(?:이어서|이어|계속해서|뒤를\s*이어|다음\s*(?:문장|문단|내용|부분|구절|줄)(?:을|를)?)\s*"
            r"(?:써|쓰|작성|완성|이어|계속|말해|알려|출력|적어)",
        ),
        (
            CONTINUATION_REQUEST,
            rf"{_DOC_KO}\s*(?:의\s*)?(?:뒷부분|나머지|다음\s*(?:부분|문장|내용))(?:을|를)?\s*{_VERB_KO}",
        ),
        (
            SPELL_OUT_REQUEST,
            rf"\bspell(?:ed|ing)?\b[^.?!]{{0,20}}\bout\b|\b{_UNIT_EN} by {_UNIT_EN}\b"
            rf"|\bone {_UNIT_EN} at a time\b"
            rf"|\b(?:spaces?|dashes|dots|hyphens) between (?:each|every|the) {_UNIT_EN}s?\b",
        ),
        (
            SPELL_OUT_REQUEST,
            r"(?:한\s*글자씩|한\s*자씩|글자\s*하나하나|낱자로|자모\s*(?:로|를|단위로)|자음\s*(?:과|와)\s*모음\s*(?:으로|을)"
            r"|글자\s*사이에\s*(?:공백|띄어쓰기|점|기호))",
        ),
        (
            REPETITION_TRICK,
            r"\b(?:repeat|say|write|print|output|type)\b[^.?!]{0,40}\b(?:forever|infinitely|endlessly|indefinitely"
            r"|non-?stop|without stopping|\d{3,} times|(?:a )?(?:hundred|thousand|million) times)\b",
        ),
        (
            REPETITION_TRICK,
            r"(?:무한히|무한으로|무한\s*반복|영원히|끝없이|끝도\s*없이|멈추지\s*말고|쉬지\s*말고|\d{3,}\s*(?:번|회))"
            r"\s*\S{0,12}\s*(?:반복|되풀이|말해|써|출력|적어|외쳐)",
        ),
        (REPETITION_TRICK, r"(?<!\S)(\S{1,20})(?:[\s,]+\1(?!\S)){15,}"),
    )
)
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))


@dataclass(frozen=True, slots=True)
class PromptVerdict:
    """Why a prompt looks like an extraction attempt (no reasons: it does not)."""

    reasons: tuple[str, ...]
    matched_length: int = 0
    partner_id: int | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)

    @property
    def verdict(self) -> Literal["extraction_attempt", "pass"]:
        return "extraction_attempt" if self.reasons else "pass"


def request_reasons(prompt: str) -> tuple[str, ...]:
    """The extraction requests worded in a prompt, each reason once, in rule order."""
    text = " ".join(unicodedata.normalize("NFKC", prompt).translate(_INVISIBLE).split())
    found: list[str] = []
    for reason, pattern in _RULES:
        if reason not in found and pattern.search(text):
            found.append(reason)
    return tuple(found)


def check_prompt(prompt: str, scanner: LeakScanner | None) -> PromptVerdict:
    """Both kinds of evidence for one prompt (all messages of a chat joined by the caller)."""
    reasons = list(request_reasons(prompt))
    matched, partner = 0, None
    if scanner is not None:
        result = scanner.scan(prompt)
        if result.leaked:
            reasons.insert(0, CARRIES_INDEXED_TEXT)
            matched, partner = result.matched_length, result.partner_id
    return PromptVerdict(tuple(reasons), matched, partner)
