"""The datasheet: what a scan cannot see, answered by the person who knows the data.

A YAML file the user fills (start from `ftaudit data datasheet-template`). It is validated (a wrong type is one
clear BadInput line naming the field), and answers that are missing are listed as missing — never invented.
Each question carries the provision that asks it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftaudit.errors import BadInput
from ftaudit.io import read_yaml
from ftaudit.regulation.citations import dsm, edpb

SourceType = Literal["public_dataset", "licensed", "private_third_party", "crawled", "user_data", "synthetic",
                     "other"]
LawfulBasis = Literal[
    "consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"
]
SpecialCategory = Literal[
    "health", "religion", "ethnicity", "sexual_orientation", "political_opinion", "trade_union", "biometric",
    "genetic", "sex_life", "philosophical_beliefs",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Period(_Section):
    start: date | None = Field(None, description="First day of collection.")
    end: date | None = Field(None, description="Last day of collection.")


class Consent(_Section):
    obtained: bool | None = Field(None, description="Was consent obtained from the data subjects?")
    records_location: str | None = Field(None, description="Where the consent records are kept.")
    withdrawal_process: str | None = Field(None, description="How a withdrawal or erasure request (GDPR Art. 17) "
                                           "reaches this dataset.")


class Review(_Section):
    reviewed: bool | None = Field(None, description="Has a person reviewed the records flagged as special-category "
                                  "data?")
    reviewer: str | None = Field(None, description="Who (role) reviewed them.")
    reviewed_on: date | None = Field(None, description="When it was reviewed.")
    outcome: str | None = Field(None, description="What was decided (kept under which Art. 9(2) condition, "
                                "removed, anonymised).")


class Datasheet(_Section):
    name: str | None = Field(None, description="Name and version of the dataset.")
    description: str | None = Field(None, description="What the data is, in two sentences. (Annex XI §1 2(c))")
    source: str | None = Field(None, description="Where the data comes from (system, vendor, website, people). "
                               "(Art. 10(2)(b); Annex XI §1 2(c) provenance)")
    source_types: list[SourceType] | None = Field(None, description="Kinds of source, as the AI Office "
                                                  "training-content summary §2.1–2.6 groups them.")
    public_datasets: list[str] | None = Field(None, description="Public datasets used, by name and version "
                                              "(summary §2.1).")
    synthetic_generators: list[str] | None = Field(None, description="Models that generated synthetic data "
                                                   "(summary §2.5).")
    crawler: str | None = Field(None, description="Crawler used and how it treats robots.txt (summary §2.3).")
    licence: str | None = Field(None, description="Licence or contract under which the data may be used for "
                                "training. (Annex XI §1 2(c); Art. 53(1)(c))")
    collection_method: str | None = Field(None, description="How the data was obtained and selected. "
                                          "(Annex XI §1 2(c); Art. 10(2)(b))")
    collection_period: Period | None = Field(None, description="Collection period (summary §2.3).")
    latest_acquisition_date: date | None = Field(None, description="Date the newest data was acquired "
                                                 "(summary §1).")
    original_purpose: str | None = Field(None, description="For personal data: the purpose it was originally "
                                         "collected for. (Art. 10(2)(b); GDPR Art. 5(1)(b))")
    preparation: str | None = Field(None, description="Preparation steps: annotation, labelling, cleaning, "
                                    "filtering, enrichment, aggregation. (Art. 10(2)(c); summary §3.3)")
    assumptions: str | None = Field(None, description="What the data is assumed to measure and represent. "
                                    "(Art. 10(2)(d))")
    known_gaps: str | None = Field(None, description="Known data gaps or shortcomings and how they are "
                                   "addressed. (Art. 10(2)(h))")
    contains_personal_data: bool | None = Field(None, description="Does the data contain personal data? "
                                                "(GDPR Art. 4(1))")
    personal_data_categories: list[str] | None = Field(None, description="Categories of personal data "
                                                       "(e.g. names, contact details, support messages).")
    data_subjects: str | None = Field(None, description="Whose data it is (customers, employees, public).")
    lawful_basis: LawfulBasis | None = Field(None, description="Lawful basis for using the personal data for "
                                             "training. (GDPR Art. 6(1)(a)–(f))")
    legitimate_interest_assessment: str | None = Field(None, description="Where the three-step legitimate "
                                                       "interest test is documented. (GDPR Art. 6(1)(f); "
                                                       f"{edpb()})")
    consent: Consent | None = Field(None, description="Consent, where it is the lawful basis. (GDPR Art. 6(1)(a), "
                                    "Art. 7)")
    special_categories: list[SpecialCategory] | None = Field(None, description="Special categories of personal "
                                                             "data present. (GDPR Art. 9(1))")
    special_category_condition: str | None = Field(None, description="The Art. 9(2) condition that allows "
                                                   "processing them (or Art. 10(5) AI Act for bias detection).")
    special_category_review: Review | None = Field(None, description="Human review of flagged special-category "
                                                   "records.")
    anonymisation: str | None = Field(None, description="Pseudonymisation or anonymisation applied. "
                                      "(GDPR Art. 5(1)(c), Art. 25)")
    tdm_opt_out_honoured: bool | None = Field(None, description="Were machine-readable text-and-data-mining "
                                              f"opt-outs honoured? ({dsm('Art. 4(3)')}; "
                                              "Art. 53(1)(c); summary §3.1)")
    tdm_opt_out_method: str | None = Field(None, description="How opt-outs were identified (robots.txt, TDMRep, "
                                           "licence terms). (summary §3.1)")
    illegal_content_removal: str | None = Field(None, description="Measures taken to remove illegal content "
                                                "(summary §3.2).")
    dpia: str | None = Field(None, description="Reference to the data protection impact assessment, if one was "
                             "needed. (GDPR Art. 35)")
    contact: str | None = Field(None, description="Team or role responsible for this dataset.")


class MissingAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    field: str
    question: str
    why: str = Field(description="Why this answer is needed here.")


def _field_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field {loc!r}; see `ftaudit data datasheet-template` for the fields"
    # The message says what was expected; the given value is not echoed.
    return f"field {loc!r}: {err['msg']}"


def parse_datasheet(data: Any, *, origin: str = "datasheet") -> Datasheet:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{origin}: a datasheet is a YAML mapping of field: answer, not a {type(data).__name__}")
    try:
        return Datasheet.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{origin}: {_field_message(exc)}") from None


def load_datasheet(path: str | Path) -> Datasheet:
    path = Path(path)
    data = read_yaml(path, "datasheet", hint=f"; create one with `ftaudit data datasheet-template -o {path}`")
    return parse_datasheet(data, origin=str(path))


def _empty(value) -> bool:
    return value is None or value == "" or value == [] or (isinstance(value, BaseModel) and all(
        _empty(getattr(value, k)) for k in type(value).model_fields))


_ALWAYS = ("name", "description", "source", "source_types", "licence", "collection_method",
           "latest_acquisition_date", "preparation", "known_gaps", "contains_personal_data", "tdm_opt_out_honoured",
           "illegal_content_removal", "contact")
_PERSONAL = ("original_purpose", "personal_data_categories", "data_subjects", "lawful_basis", "anonymisation")


def missing_answers(
    sheet: Datasheet | None, *, personal_data_found: bool = False, special_categories_found: bool = False
) -> list[MissingAnswer]:
    """The questions still unanswered, with why each matters for this dataset. Nothing is filled in."""
    sheet = sheet or Datasheet()
    fields = Datasheet.model_fields
    wanted: list[tuple[str, str]] = [(f, "asked of every dataset") for f in _ALWAYS]
    if personal_data_found or sheet.contains_personal_data:
        why = ("the scan found personal data" if personal_data_found else "the datasheet says it holds personal data")
        wanted += [(f, why) for f in _PERSONAL]
        if sheet.lawful_basis == "legitimate_interests":
            wanted.append(("legitimate_interest_assessment", "the lawful basis is legitimate interests"))
        if sheet.lawful_basis == "consent":
            wanted.append(("consent", "the lawful basis is consent"))
    if special_categories_found or sheet.special_categories:
        why = ("the scan flagged special-category data" if special_categories_found
               else "the datasheet lists special categories")
        wanted += [("special_categories", why), ("special_category_condition", why),
                   ("special_category_review", why)]
    if sheet.source_types and "crawled" in sheet.source_types:
        wanted += [("crawler", "the data includes crawled content"), ("collection_period", "crawled content"),
                   ("tdm_opt_out_method", "the data includes crawled content")]
    if sheet.source_types and "public_dataset" in sheet.source_types:
        wanted.append(("public_datasets", "the data includes public datasets"))
    if sheet.source_types and "synthetic" in sheet.source_types:
        wanted.append(("synthetic_generators", "the data includes synthetic data"))
    out: list[MissingAnswer] = []
    seen: set[str] = set()
    for name, why in wanted:
        if name in seen:
            continue
        seen.add(name)
        if _empty(getattr(sheet, name)):
            out.append(MissingAnswer(field=name, question=fields[name].description or name, why=why))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Template
# ---------------------------------------------------------------------------------------------------------------

def _choices(annotation) -> list[str]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    for arg in get_args(annotation):
        if get_origin(arg) is Literal:
            return list(get_args(arg))
        if get_origin(arg) is list:
            return _choices(get_args(arg)[0])
    return []


def _is_section(annotation) -> type[BaseModel] | None:
    for arg in get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _emit(model: type[BaseModel], indent: str, lines: list[str]) -> None:
    for name, info in model.model_fields.items():
        lines.append(f"{indent}# {info.description}")
        choices = _choices(info.annotation)
        if choices:
            many = any(get_origin(a) is list for a in get_args(info.annotation))
            lines.append(f"{indent}# {'a list of' if many else 'one of'}: {', '.join(choices)}")
        section = _is_section(info.annotation)
        if section is not None:
            lines.append(f"{indent}{name}:")
            _emit(section, indent + "  ", lines)
        else:
            lines.append(f"{indent}{name}:")


def template_text() -> str:
    lines = [
        "# ftaudit datasheet: answer what you know, leave the rest empty (empty answers are listed as missing,",
        "# never invented). Dates as YYYY-MM-DD; lists as [a, b]; yes/no as true/false.",
        "# Validate with: ftaudit data scan DATA --datasheet THIS_FILE",
        "",
    ]
    _emit(Datasheet, "", lines)
    return "\n".join(lines) + "\n"
