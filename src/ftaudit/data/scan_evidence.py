"""The scan's aggregate turned into `DataEvidence`: findings, duplicates, leakage, languages, domains, bias, the
NER sample's estimates."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ftaudit.data import bias as bias_mod
from ftaudit.data import provenance as prov
from ftaudit.data.datasheet import Datasheet, missing_answers
from ftaudit.data.evidence import (
    DataEvidence,
    DetectionInfo,
    Domains,
    DomainShare,
    Duplicates,
    FileFingerprint,
    FindingsSummary,
    FindingTypeSummary,
    LanguageShare,
    Leakage,
    NerEstimate,
    NerSample,
    RecordDigest,
    RecordPair,
)
from ftaudit.data.scan_worker import NER_SAMPLE_RULE, ScanOptions
from ftaudit.data.stats import TokenCounter

if TYPE_CHECKING:
    from ftaudit.data.scan_aggregate import Aggregate

def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n."""
    if n == 0:
        return 0.0, 1.0
    p, z2 = k / n, z * z
    centre, half = (p + z2 / (2 * n)) / (1 + z2 / n), z * ((p * (1 - p) + z2 / (4 * n)) / n) ** 0.5 / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ner_sample_evidence(agg: "Aggregate", opts: ScanOptions) -> NerSample:
    from ftaudit.data.pii import NER_TYPES

    n, total = agg.ner_records, agg.counts.records
    estimates = []
    for t in NER_TYPES:
        k = agg.ner_type_records[t]
        low, high = wilson(k, n)
        rate = k / n if n else 0.0
        estimates.append(NerEstimate(type=t, sampled_records_with_type=k, rate=round(rate, 6), ci_low=round(low, 6),
                                     ci_high=round(high, 6), estimated_records=round(rate * total)))
    return NerSample(records=n, coverage=round(n / total, 6) if total else 0.0, rate=opts.ner_rate,
                     seed=opts.ner_seed, rule=NER_SAMPLE_RULE, estimates=estimates)


def build_evidence(agg: "Aggregate", opts: ScanOptions, files: list[FileFingerprint], sheet: Datasheet | None,
              sheet_sha: str | None, info: DetectionInfo | None, with_eval: bool) -> DataEvidence:
    records = agg.counts.records
    by_type = [
        FindingTypeSummary(type=t, category=a.category, count=a.count, records=a.records,
                           top_fields=dict(a.fields.most_common(5)), samples=a.samples)
        for t, a in sorted(agg.types.items(), key=lambda kv: (-kv[1].count, kv[0]))
    ]
    findings = FindingsSummary(
        total=agg.total_findings, records_with_personal_data=agg.rec_pii, records_with_secrets=agg.rec_secret,
        records_with_special_categories=agg.rec_special, records_with_special_category_terms=agg.rec_special_terms,
        by_type=by_type, special_categories=[v.flag(c) for c, v in sorted(agg.special.items())],
        detection=info,
    )
    d = agg.dups.result()
    method = (f"MinHash ({opts.num_perm} permutations, word 3-gram shingles) + LSH ({opts.bands} bands), "
              "candidates verified against the threshold; exact = identical after case/whitespace normalisation")
    duplicates = Duplicates(
        method=method, threshold=opts.near_duplicate_threshold,
        exact_duplicate_records=d.exact_duplicate_items, exact_groups=d.exact_groups,
        near_duplicate_records=d.near_duplicate_items, near_duplicate_clusters=d.near_duplicate_clusters,
        duplicate_rate=round((d.exact_duplicate_items + d.near_duplicate_items) / records, 6) if records else 0.0,
        near_examples=[record_pair(agg, p.a, p.b, p.similarity) for p in d.pairs],
        exact_examples=[[agg.source_of(i)[1] for i in g] for g in d.exact_examples],
    )
    leakage = None
    if with_eval:
        leaked = agg.exact_leaks + agg.near_leaks
        leakage = Leakage(method=method, threshold=opts.near_duplicate_threshold, eval_records=agg.eval_records,
                          exact_overlap=agg.exact_leaks, near_overlap=agg.near_leaks,
                          overlap_rate=round(leaked / agg.eval_records, 6) if agg.eval_records else 0.0,
                          examples=agg.leak_examples)
    total_chars = sum(agg.stats.language_chars.values()) or 1
    languages = [LanguageShare(language=lang, records=n, characters=agg.stats.language_chars[lang],
                               share=round(agg.stats.language_chars[lang] / total_chars, 4))
                 for lang, n in sorted(agg.stats.languages.items(), key=lambda kv: (-agg.stats.language_chars[kv[0]],
                                                                                    kv[0]))]
    ranked = agg.domains.ranked()
    keep = prov.top_domain_count(len(ranked), sme=opts.sme)
    domains = Domains(
        method="registrable domain of the record's URL metadata field, else of URLs in its text (sharing its "
               "content size equally); content size = UTF-8 bytes of content text (reading)",
        domains_total=len(ranked), records_with_domain=sum(agg.domains.by_method.values()),
        rule=prov.top_domain_rule(opts.sme),
        top=[DomainShare(domain=r.domain, bytes=r.bytes, records=r.records, share=r.share) for r in ranked[:keep]],
    )
    digest = RecordDigest(algorithm=prov.RecordDigest.algorithm, value=agg.digest.hexdigest(), records=records)
    eval_digest = (RecordDigest(algorithm=prov.RecordDigest.algorithm, value=agg.eval_digest.hexdigest(),
                                records=agg.eval_records) if with_eval else None)
    summary = bias_mod.summarise(agg.bias)
    from ftaudit.data.evidence import BiasEvidence

    return DataEvidence(
        scanned_at=datetime.now(timezone.utc), files=files, record_digest=digest, eval_record_digest=eval_digest,
        counts=agg.counts, skipped=agg.skipped, findings=findings, duplicates=duplicates, leakage=leakage,
        languages=languages,
        language_method="script + function-word profile (ftaudit.data.stats.detect_language); 'und' = undetermined",
        characters=agg.stats.char_distribution(),
        tokens=agg.stats.token_distribution(TokenCounter.method_name(opts.tokenizer)),
        quality=agg.quality, domains=domains, datasheet=sheet, datasheet_sha256=sheet_sha,
        missing_answers=missing_answers(sheet, personal_data_found=agg.rec_pii > 0,
                                        special_categories_found=agg.rec_special > 0),
        bias=BiasEvidence.model_validate(summary),
    )


def record_pair(agg: "Aggregate", a: int, b: int, sim: float) -> RecordPair:
    a_src, a_idx = agg.source_of(a)
    b_src, b_idx = agg.source_of(b)
    return RecordPair(a_source=a_src, a_record=a_idx, b_source=b_src, b_record=b_idx, similarity=round(sim, 4))


