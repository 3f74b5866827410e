"""The data-governance section of the RunRecord (`record.data`), written by `ftaudit data scan`.

Source of truth for the data report and the data part of the training-content summary. It never holds personal
data: findings appear as counts by type, positions (record, field, offsets) and redacted samples only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from ftaudit.data.datasheet import Datasheet, MissingAnswer
from ftaudit.data.tdm import TdmEvidence
from ftaudit.strict import Strict


class FileFingerprint(Strict):
    path: str
    role: Literal["train", "eval"]
    format: str | None = None
    sha256: str = Field(description="sha256 of the file's bytes (for a dataset directory: of its file list).")
    bytes: int
    records: int
    skipped: int = Field(0, description="Records that could not be read (--on-error skip).")


class RecordDigest(Strict):
    algorithm: str
    value: str
    records: int


class SkippedRecord(Strict):
    source: str
    index: int
    reason: str = Field(description="Why it could not be read; never its content.")


class Counts(Strict):
    records: int = 0
    fields: int = Field(0, description="Text fields scanned for personal data (every string leaf).")
    content_fields: int = Field(0, description="Text fields counted as content (metadata keys left out).")
    characters: int = 0
    content_bytes: int = Field(0, description="UTF-8 bytes of content text.")
    tokens: int = 0
    skipped_records: int = 0


class RedactedSample(Strict):
    record: int
    source: str
    field: str
    start: int
    end: int
    redacted: str = Field(description="Context around the finding with every finding replaced by <TYPE> and "
                          "other capitalised words, digits and symbols-bearing tokens shape-masked.")


class FindingTypeSummary(Strict):
    type: str
    category: Literal["personal_data", "secret", "special_category", "other"]
    count: int
    records: int
    top_fields: dict[str, int] = Field(default_factory=dict)
    samples: list[RedactedSample] = Field(default_factory=list)


class SpecialCategoryFlag(Strict):
    category: str = Field(description="GDPR Art. 9(1) category.")
    records: int = Field(description="Records where a category term sits next to a personal cue ('my', 'she is', "
                         "'diagnosed with'): likely data about a person.")
    term_only_records: int = Field(0, description="Records with a category term but no personal cue (a topic).")
    record_examples: list[int] = Field(default_factory=list, description="Record indices for the reviewer "
                                       "(personal-cue records first).")


class NerEstimate(Strict):
    """A rate measured on the NER sample, projected onto all records, with its 95 % Wilson score interval."""

    type: str
    sampled_records_with_type: int
    rate: float = Field(description="Share of the sampled records with at least one finding of this type.")
    ci_low: float
    ci_high: float
    estimated_records: int = Field(description="rate × all records scanned.")


class NerSample(Strict):
    records: int = Field(description="Records NER read.")
    coverage: float = Field(description="records / all records scanned.")
    rate: float = Field(description="Inclusion probability of each record.")
    seed: int
    rule: str = Field(description="Which records had NER, reproducibly.")
    estimates: list[NerEstimate] = Field(default_factory=list)


class DetectionInfo(Strict):
    ner_available: bool
    note: str
    detectors: list[str] = Field(default_factory=list)
    ner_sample: NerSample | None = Field(None, description="When NER read a seeded uniform sample of the records "
                                         "(--ner sample:N), not all of them.")


class FindingsSummary(Strict):
    total: int = 0
    records_with_personal_data: int = 0
    records_with_secrets: int = 0
    records_with_special_categories: int = Field(0, description="Records with a special-category term next to "
                                                 "a personal cue (reading of GDPR Art. 9(1): data about a person).")
    records_with_special_category_terms: int = Field(0, description="Records with any special-category term.")
    by_type: list[FindingTypeSummary] = Field(default_factory=list)
    special_categories: list[SpecialCategoryFlag] = Field(default_factory=list)
    detection: DetectionInfo | None = None


class RecordPair(Strict):
    a_source: str
    a_record: int
    b_source: str
    b_record: int
    similarity: float


class Duplicates(Strict):
    method: str
    threshold: float
    exact_duplicate_records: int = Field(description="Records that repeat an earlier record exactly "
                                         "(case and whitespace normalised).")
    exact_groups: int
    near_duplicate_records: int = Field(description="Records that are not exact repeats but have estimated "
                                        "Jaccard similarity ≥ threshold to an earlier record.")
    near_duplicate_clusters: int
    duplicate_rate: float = Field(description="(exact + near duplicate records) / records.")
    near_examples: list[RecordPair] = Field(default_factory=list)
    exact_examples: list[list[int]] = Field(default_factory=list, description="Groups of record ids "
                                            "(record index in file order across training files).")


class Leakage(Strict):
    method: str
    threshold: float
    eval_records: int
    exact_overlap: int = Field(description="Eval records whose text also appears in training data.")
    near_overlap: int = Field(description="Eval records near a training record (not exact).")
    overlap_rate: float
    examples: list[RecordPair] = Field(default_factory=list, description="a = eval record, b = training record.")


class LanguageShare(Strict):
    language: str = Field(description="ISO 639-1 code; 'und' = undetermined.")
    records: int
    characters: int
    share: float = Field(description="Share of characters.")


class HistogramBin(Strict):
    low: int
    high: int
    count: int


class LengthDistribution(Strict):
    unit: str
    count: int
    total: int
    min: int
    max: int
    mean: float
    p50: float
    p90: float
    p99: float
    histogram: list[HistogramBin] = Field(default_factory=list)


class QualityIssues(Strict):
    empty_records: int = 0
    garbled_records: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    record_examples: dict[str, list[int]] = Field(default_factory=dict)


class DomainShare(Strict):
    domain: str
    bytes: float
    records: int
    share: float


class Domains(Strict):
    method: str
    domains_total: int
    records_with_domain: int
    rule: str
    top: list[DomainShare] = Field(default_factory=list)


class OccupationCount(Strict):
    occupation: str
    sentences: int


class GroupRepresentation(Strict):
    group: str
    records: int
    mentions: int
    share_of_dimension: float
    sentences: int
    positive_rate: float | None
    negative_rate: float | None
    top_occupations: list[OccupationCount] = Field(default_factory=list)


class BiasDimension(Strict):
    dimension: str
    mentions: int
    groups: list[GroupRepresentation]


class BiasEvidence(Strict):
    lexicon_version: str
    method: str
    disclaimer: str
    records: int
    sentences: int
    baseline_positive_rate: float
    baseline_negative_rate: float
    dimensions: list[BiasDimension] = Field(default_factory=list)


class PolicyReason(Strict):
    rule: str
    citation: str
    detail: str


class PolicyVerdict(Strict):
    status: Literal["pass", "blocked"]
    policy: dict = Field(default_factory=dict, description="The policy settings that were applied.")
    reasons: list[PolicyReason] = Field(default_factory=list)
    warnings: list[PolicyReason] = Field(default_factory=list)


class DataEvidence(Strict):
    scanned_at: datetime | None = None
    files: list[FileFingerprint] = Field(default_factory=list)
    record_digest: RecordDigest | None = None
    eval_record_digest: RecordDigest | None = None
    counts: Counts = Field(default_factory=Counts)
    skipped: list[SkippedRecord] = Field(default_factory=list, description="First skipped records (capped).")
    findings: FindingsSummary = Field(default_factory=FindingsSummary)
    duplicates: Duplicates | None = None
    leakage: Leakage | None = None
    languages: list[LanguageShare] = Field(default_factory=list)
    language_method: str | None = None
    characters: LengthDistribution | None = None
    tokens: LengthDistribution | None = None
    quality: QualityIssues = Field(default_factory=QualityIssues)
    domains: Domains | None = None
    datasheet: Datasheet | None = None
    datasheet_sha256: str | None = None
    missing_answers: list[MissingAnswer] = Field(default_factory=list)
    bias: BiasEvidence | None = None
    policy: PolicyVerdict | None = None
    tdm: TdmEvidence | None = Field(None, description="Text-and-data-mining reservations of the source domains.")
