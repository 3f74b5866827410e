"""The data policy: when the scan's findings block training (exit code 5, `errors.DataPolicyBlocked`).

Configurable per organisation: `--policy default|strict|off`, a YAML file, or inline `key=value,...`; inside
`ftaudit train` the run config's `data_policy:` mapping. The default blocks on secrets and on special-category
data that no one has reviewed; personal data alone does not block unless a threshold is set, because a lawful
basis may exist (GDPR Art. 6) — it is listed for the datasheet instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftaudit.data.evidence import DataEvidence, PolicyReason, PolicyVerdict
from ftaudit.errors import BadInput, DataPolicyBlocked
from ftaudit.io import read_yaml
from ftaudit.regulation.citations import act, dsm


class DataPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    block_on_secrets: bool = Field(True, description="Block when credentials or keys are found.")
    block_on_unreviewed_special_categories: bool = Field(
        True, description="Block when special-category data is flagged and the datasheet records no human review.")
    max_personal_data_record_rate: float | None = Field(
        None, ge=0, le=1, description="Block when the share of records holding personal data exceeds this.")
    max_personal_data_records: int | None = Field(
        None, ge=0, description="Block when more records than this hold personal data.")
    max_eval_overlap_rate: float | None = Field(
        None, ge=0, le=1, description="Block when more than this share of eval records also appear in training.")
    require_datasheet: bool = Field(False, description="Block when no datasheet was given.")
    block_on_tdm_reserved: bool = Field(True, description="Block when training records come from a domain that "
                                        "reserved its rights for text and data mining (needs TDM evidence).")


PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "strict": {"max_personal_data_records": 0, "max_eval_overlap_rate": 0.0, "require_datasheet": True},
    "off": {"block_on_secrets": False, "block_on_unreviewed_special_categories": False},
}


def _validated(data: Any, origin: str) -> DataPolicy:
    if not isinstance(data, dict):
        raise BadInput(f"{origin}: a data policy is a mapping of setting: value")
    try:
        return DataPolicy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbid" or err["type"] == "extra_forbidden":
            raise BadInput(f"{origin}: unknown policy setting {loc!r}; known: "
                           f"{', '.join(DataPolicy.model_fields)}") from None
        raise BadInput(f"{origin}: policy setting {loc!r}: {err['msg']}") from None


def load_policy(spec: str | dict | DataPolicy | None) -> DataPolicy:
    """A preset name, a YAML file path, inline 'key=value,key=value', a mapping, or None (= default)."""
    if spec is None:
        return DataPolicy()
    if isinstance(spec, DataPolicy):
        return spec
    if isinstance(spec, dict):
        return _validated(spec, "data policy")
    if spec in PRESETS:
        return DataPolicy(**PRESETS[spec])
    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        data = read_yaml(path, "policy file")
        return _validated(data or {}, str(path))
    if "=" in spec:
        data: dict[str, Any] = {}
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise BadInput(f"--policy: expected key=value, got {part!r}")
            data[key.strip()] = yaml.safe_load(value.strip())
        return _validated(data, "--policy")
    raise BadInput(f"--policy: {spec!r} is not a preset ({', '.join(PRESETS)}), a YAML file or key=value list")


def evaluate(evidence: DataEvidence, policy: DataPolicy) -> PolicyVerdict:
    """The verdict, with each blocking rule's citation. Pure: raises nothing (see `enforce`)."""
    reasons: list[PolicyReason] = []
    warnings: list[PolicyReason] = []
    f = evidence.findings
    records = evidence.counts.records or 0
    if f.records_with_secrets:
        item = PolicyReason(
            rule="secrets",
            citation="Art. 15(1),(5) AI Act (cybersecurity); GDPR Art. 32 (reading: credentials in training data "
                     "can be memorised and regurgitated by the model)",
            detail=f"{f.records_with_secrets} record(s) hold credentials or keys; remove or rotate them, or run "
                   "`ftaudit data anonymize`",
        )
        (reasons if policy.block_on_secrets else warnings).append(item)
    reviewed = bool(evidence.datasheet and evidence.datasheet.special_category_review
                    and evidence.datasheet.special_category_review.reviewed)
    if f.records_with_special_categories and not reviewed:
        item = PolicyReason(
            rule="unreviewed_special_categories",
            citation="GDPR Art. 9(1)-(2); Art. 10(5) AI Act",
            detail=f"{f.records_with_special_categories} record(s) flagged with special-category data and the "
                   "datasheet records no review (special_category_review.reviewed: true)",
        )
        (reasons if policy.block_on_unreviewed_special_categories else warnings).append(item)
    pii = f.records_with_personal_data
    if policy.max_personal_data_records is not None and pii > policy.max_personal_data_records:
        reasons.append(PolicyReason(
            rule="max_personal_data_records", citation="GDPR Art. 5(1)(c) data minimisation",
            detail=f"{pii} record(s) hold personal data; the policy allows {policy.max_personal_data_records}"))
    if policy.max_personal_data_record_rate is not None and records:
        rate = pii / records
        if rate > policy.max_personal_data_record_rate:
            reasons.append(PolicyReason(
                rule="max_personal_data_record_rate", citation="GDPR Art. 5(1)(c) data minimisation",
                detail=f"{rate:.2%} of records hold personal data; the policy allows "
                       f"{policy.max_personal_data_record_rate:.2%}"))
    if policy.max_eval_overlap_rate is not None and evidence.leakage is not None:
        if evidence.leakage.overlap_rate > policy.max_eval_overlap_rate:
            reasons.append(PolicyReason(
                rule="max_eval_overlap_rate",
                citation="Art. 10(3), Art. 15(1) AI Act (reading: evaluation on training data overstates accuracy)",
                detail=f"{evidence.leakage.overlap_rate:.2%} of eval records overlap the training data"))
    t = evidence.tdm
    if t is not None and t.records_from_reserved_domains:
        item = PolicyReason(
            rule="tdm_reserved", citation=f"{dsm('Art. 4(3)')}; {act('Art. 53(1)(c)')}",
            detail=f"{t.records_from_reserved_domains} record(s) come from {t.reserved} domain(s) that reserved "
                   "their rights for text and data mining; remove them, or record a licence for those domains in "
                   "the TDM declarations")
        (reasons if policy.block_on_tdm_reserved else warnings).append(item)
    if policy.require_datasheet and evidence.datasheet is None:
        reasons.append(PolicyReason(rule="require_datasheet", citation="Art. 10(2) AI Act; Annex XI §1 2(c)",
                                    detail="no datasheet was given (--datasheet FILE)"))
    return PolicyVerdict(status="blocked" if reasons else "pass", policy=policy.model_dump(), reasons=reasons,
                         warnings=warnings)


def enforce(verdict: PolicyVerdict | None) -> None:
    """Raise DataPolicyBlocked (exit 5) when the verdict blocks; the message names every rule that fired."""
    if verdict is not None and verdict.status == "blocked":
        rules = "; ".join(f"{r.rule}: {r.detail}" for r in verdict.reasons)
        raise DataPolicyBlocked(f"data policy blocked training ({rules})")
