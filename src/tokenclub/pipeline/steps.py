"""The default step list, built from plain, picklable parameters (so Ray and process pools can too)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenclub.curate.count import CountStep
from tokenclub.curate.dedup import DedupSignatureStep
from tokenclub.curate.language import LanguageFilter
from tokenclub.curate.normalize import NormalizeStep
from tokenclub.curate.pii import PiiStep
from tokenclub.curate.quality import QualityFilter, QualitySettings
from tokenclub.curate.step import Step
from tokenclub.errors import StateError
from tokenclub.tokenizer import TokenCounter, fingerprint


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """Everything that decides what the pipeline does; two runs with equal specs agree exactly."""

    tokenizer_path: Path
    tokenizer_fingerprint: str
    hangul_threshold: float
    quality: QualitySettings

    @classmethod
    def for_tokenizer(cls, path: Path, hangul_threshold: float, quality: QualitySettings) -> PipelineSpec:
        return cls(path, fingerprint(path), hangul_threshold, quality)

    def __call__(self) -> Sequence[Step]:
        counter = TokenCounter(self.tokenizer_path)
        if counter.fingerprint != self.tokenizer_fingerprint:
            raise StateError(f"{self.tokenizer_path}: tokenizer file changed while the pipeline ran")
        return [
            NormalizeStep(),
            LanguageFilter(min_hangul_share=self.hangul_threshold),
            QualityFilter(self.quality),
            PiiStep(),
            DedupSignatureStep(),
            CountStep(counter),
        ]
