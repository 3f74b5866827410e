"""The data part of the public training-content summary (AI Office template, July 2025; Art. 53(1)(d) AI Act).

Fills what the data scan and the datasheet know: §1 modality and size band, latest acquisition date, linguistic
characteristics; §2 data sources (2.1–2.6, with the top domains of §2.3); §3 processing (3.1 TDM opt-outs, 3.2
illegal content, 3.3 other). Provider, model, dependencies and market date come from the run and are added by the
document generator. An answer the datasheet lacks is written as NOT_ANSWERED, never guessed. For a modifier the
summary covers the modification's data only (recital 109; guidelines §3.2, a reading).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ftaudit.data.evidence import DataEvidence
from ftaudit.regulation.citations import TEMPLATE, act, dsm

NOT_ANSWERED = "not answered in the datasheet"
# Template §1, text modality: size bands in tokens.
BILLION = 10**9
TEN_TRILLION = 10 * 10**12


def text_size_band(tokens: int) -> str:
    """Template §1 size band for text: under 1 billion / 1 billion–10 trillion / over 10 trillion tokens."""
    if tokens < BILLION:
        return "less than 1 billion tokens"
    if tokens <= TEN_TRILLION:
        return "1 billion to 10 trillion tokens"
    return "more than 10 trillion tokens"


def _answer(value: Any) -> Any:
    if value is None or value == "" or value == []:
        return NOT_ANSWERED
    return value


def _used(types: list[str] | None, kind: str) -> bool | str:
    return NOT_ANSWERED if types is None else kind in types


def training_content_summary(ev: DataEvidence) -> dict[str, Any]:
    ds = ev.datasheet
    types = ds.source_types if ds else None
    get = (lambda name: getattr(ds, name) if ds else None)  # noqa: E731
    tokens = ev.counts.tokens
    token_unit = ev.tokens.unit if ev.tokens else "tokens"
    domains = ev.domains
    period = get("collection_period")
    personal = ev.findings.records_with_personal_data
    dup = ev.duplicates
    return {
        "template": TEMPLATE,
        "part": "data: §1 modality, size, acquisition date and linguistic characteristics; §2 data sources; "
                "§3 processing. Provider, model, dependencies and market date are added from the run record.",
        "generated_at": datetime.now(timezone.utc).isoformat(),
        "scope": "the fine-tuning data of this modification (a reading of recital 109 AI Act)",
        "section_1_general_information": {
            "modalities": [{
                "modality": "text",
                "size_band": text_size_band(tokens),
                "size_band_rule": "template §1: text under 1 billion tokens / 1 billion–10 trillion / over 10 "
                                  "trillion",
                "tokens": tokens,
                "token_count_method": token_unit,
                "records": ev.counts.records,
                "content_type": _answer(get("description")),
            }],
            "latest_acquisition_date": _answer(get("latest_acquisition_date") and
                                               get("latest_acquisition_date").isoformat()),
            "linguistic_characteristics": {
                "languages": [{"language": x.language, "share_of_characters": x.share} for x in ev.languages],
                "method": ev.language_method,
            },
        },
        "section_2_data_sources": {
            "2.1_public_datasets": {"used": _used(types, "public_dataset"),
                                    "datasets": _answer(get("public_datasets"))},
            "2.2.1_licensed_from_rightsholders": {"used": _used(types, "licensed"),
                                                  "licence": _answer(get("licence"))},
            "2.2.2_other_private_third_party_data": {"used": _used(types, "private_third_party")},
            "2.3_crawled_and_scraped_data": {
                "used": _used(types, "crawled"),
                "crawler": _answer(get("crawler")),
                "period": (_answer(None) if period is None or period.start is None and period.end is None else
                           {"start": period.start and period.start.isoformat(),
                            "end": period.end and period.end.isoformat()}),
                "top_domains_rule": domains.rule if domains else None,
                "domains_total": domains.domains_total if domains else 0,
                "top_domains": [{"domain": d.domain, "share_of_content": d.share} for d in
                                (domains.top if domains else [])],
                "domains_method": domains.method if domains else None,
            },
            "2.4_user_data": {"used": _used(types, "user_data"), "description": _answer(get("data_subjects"))},
            "2.5_synthetic_data": {"used": _used(types, "synthetic"),
                                   "generated_by": _answer(get("synthetic_generators"))},
            "2.6_other": {"used": _used(types, "other"), "source": _answer(get("source"))},
        },
        "section_3_data_processing": {
            "3.1_respect_of_tdm_opt_outs": {
                "honoured": _answer(get("tdm_opt_out_honoured")),
                "method": _answer(get("tdm_opt_out_method")),
                "citation": f"{act('Art. 53(1)(c)')}; {dsm('Art. 4(3)')}",
                "domains_checked": len(ev.tdm.domains) if ev.tdm else None,
                "domains_reserving_rights": ev.tdm.reserved_domains if ev.tdm else None,
                "check_method": ev.tdm.method if ev.tdm else None,
            },
            "3.2_removal_of_illegal_content": _answer(get("illegal_content_removal")),
            "3.3_other": {
                "preparation": _answer(get("preparation")),
                "personal_data": (
                    f"scanned every record for personal data, secrets and special-category terms; {personal} of "
                    f"{ev.counts.records} records held personal data"
                    + ("" if ev.findings.detection is None or ev.findings.detection.ner_available
                       else " (pattern-based types only; NER was not available)")
                ),
                "anonymisation": _answer(get("anonymisation")),
                "deduplication": (f"{dup.exact_duplicate_records} exact and {dup.near_duplicate_records} near "
                                  f"duplicate records found ({dup.method})" if dup else NOT_ANSWERED),
            },
        },
        "missing_answers": [m.field for m in ev.missing_answers],
    }
