"""Human answers (`ftaudit docs RUN_DIR --answers answers.yaml`): what no evidence can say.

One typed model lists every question the documents ask, each with the provision that asks it. An unknown key or a
wrongly typed value is one BadInput line naming the key (exit 1); nothing is rendered from a bad file. Answers fill
items that evidence leaves empty; they never overwrite evidence.
"""

from __future__ import annotations

import difflib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from ftaudit.errors import BadInput
from ftaudit.io import read_yaml
from ftaudit.regulation import citations as cite
from ftaudit.regulation.citations import AI_ACT, CODE_OF_PRACTICE
from ftaudit.strict import Strict

Severity = Literal["low", "medium", "high", "critical"]
Likelihood = Literal["rare", "unlikely", "possible", "likely", "almost_certain"]
Residual = Literal["low", "medium", "high"]
AnnexIIIArea = Literal["none", "1", "2", "3", "4", "5", "6", "7", "8"]


def _q(question: str, citation: str) -> Any:
    return Field(None, description=question, json_schema_extra={"citation": citation})



class RiskAnswer(Strict):
    """A person's judgement on one risk of the register (Art. 9(2)(b)–(d), 9(5))."""

    likelihood: Likelihood | None = Field(None, description="Overrides a likelihood the tool could not derive.")
    severity: Severity | None = None
    mitigation: str | None = None
    residual_risk: Residual | None = None
    owner: str | None = Field(None, description="Role accountable for the mitigation.")


class AdditionalRisk(Strict):
    hazard: str
    likelihood: Likelihood
    severity: Severity
    mitigation: str
    residual_risk: Residual
    evidence: str | None = None


class Answers(Strict):
    # --- model and release (Annex XI §1 1(a)–(f), Annex XII 1) ---
    model_version: str | None = _q("Version of the released model.", f"{AI_ACT}, Annex XI §1 1(c); "
                                   f"{cite.template('§1.2')}")
    licence: str | None = _q("Licence of the released model (SPDX id where one exists).",
                             f"{AI_ACT}, Annex XI §1 1(f); Annex XII 1(h)")
    release_date: date | None = _q("Date of release.", f"{AI_ACT}, Annex XI §1 1(c)")
    eu_market_date: date | None = _q("Date the model is (or was) placed on the EU market.",
                                     cite.template("§1.2"))
    distribution_methods: list[str] | None = _q("Methods of distribution (download, API, on-premises ...).",
                                                f"{AI_ACT}, Annex XI §1 1(c); Annex XII 1(c)")
    integration_systems: str | None = _q("Type and nature of AI systems the model can be integrated into.",
                                         f"{AI_ACT}, Annex XI §1 1(a); Annex XII 1(a)")
    acceptable_use_policy: str | None = _q("The acceptable use policy (or where it is published).",
                                           f"{AI_ACT}, Annex XI §1 1(b); Annex XII 1(b)")
    architecture_description: str | None = _q("Architecture of the model in a few words (e.g. decoder-only "
                                              "transformer, LoRA adapter on ...).",
                                              f"{AI_ACT}, Annex XI §1 1(d); Annex XII 1(f)")
    context_window: int | None = _q("Maximum input size (context window) in tokens.", f"{AI_ACT}, Annex XII 2(b)")
    external_interaction: str | None = _q("How the model interacts with hardware or software that is not part of "
                                          "it.", f"{AI_ACT}, Annex XII 1(d)")
    technical_means_for_integration: str | None = _q("Technical means (instructions, infrastructure, tools) needed "
                                                     "to integrate the model.",
                                                     f"{AI_ACT}, Annex XI §1 2(a); Annex XII 2(a)")
    design_choices: str | None = _q("Key design choices of the fine-tuning and why they were made.",
                                    f"{AI_ACT}, Annex XI §1 2(b)")
    data_curation_measures: str | None = _q("Measures to detect unsuitable data sources and identifiable biases, "
                                            "beyond the automated scan.", f"{AI_ACT}, Annex XI §1 2(c)")
    copyright_policy: str | None = _q("Where the copyright policy (honouring TDM opt-outs) is published.",
                                      f"{AI_ACT}, Art. 53(1)(c); {cite.dsm('Art. 4(3)')}")
    copyright_contact: str | None = _q("Point of contact where rightsholders can lodge complaints about the use "
                                       "of their works.", f"{cite.act('Art. 53(1)(c)')}; {CODE_OF_PRACTICE}")
    tdm_measures: str | None = _q("Measures to identify and honour reservations of rights beyond the automated "
                                  "check (licence review, opt-out registries, crawler settings).",
                                  f"{cite.act('Art. 53(1)(c)')}; {cite.template('§3.1')}")
    code_of_practice_signatory: bool | None = _q("The provider is a signatory of the General-Purpose AI Code of "
                                                 "Practice, whose copyright chapter commits it to respect TDM "
                                                 "reservations.", cite.template("§3.1"))
    # --- training-content summary (template §1.3, §2.3–2.5) ---
    continuous_training: bool | None = _q("Is the model continuously trained on new data after it is placed on "
                                          "the market?", cite.template("§1.3"))
    other_characteristics: str | None = _q("Other relevant characteristics of the training data (e.g. domains, "
                                           "demographics, time span).", cite.template("§1.3"))
    crawler_purposes: str | None = _q("Purposes of the crawler(s) that collected crawled data, and their "
                                      "behaviour (e.g. robots.txt respected).", cite.template("§2.3"))
    crawled_content_description: str | None = _q("Description of the type of content and the online sources "
                                                 "crawled.", cite.template("§2.3"))
    crawled_modalities: list[str] | None = _q("Modalities of the crawled data (text, image, audio, video).",
                                              cite.template("§2.3"))
    user_data_model_interactions: bool | None = _q("Was data from user interactions with the AI model (prompts, "
                                                   "inputs) used for training?", cite.template("§2.4"))
    user_data_other_services: bool | None = _q("Was data collected from user interactions with the provider's "
                                               "other services or products used for training?",
                                               cite.template("§2.4"))
    synthetic_own_models: list[str] | None = _q("Models of the provider (or made on its behalf) that generated "
                                                "synthetic training data.", cite.template("§2.5"))
    synthetic_third_party_models: list[str] | None = _q("Third-party models that generated synthetic training "
                                                        "data.", cite.template("§2.5"))
    # --- open-source exemption (Art. 53(2), 54(6); guidelines §4) ---
    oss_free_open_licence: bool | None = _q("The model is released under a free and open-source licence that "
                                            "allows access, use, modification and distribution.",
                                            f"{cite.act('Art. 53(2)')}; {cite.guidelines('§4')}")
    oss_weights_public: bool | None = _q("The parameters, including the weights, are made publicly available.",
                                         f"{cite.act('Art. 53(2)')}; {cite.guidelines('§4')}")
    oss_architecture_public: bool | None = _q("Information on the model architecture is made publicly available.",
                                              f"{cite.act('Art. 53(2)')}; {cite.guidelines('§4')}")
    oss_usage_public: bool | None = _q("Information on model usage is made publicly available.",
                                       f"{cite.act('Art. 53(2)')}; {cite.guidelines('§4')}")
    oss_no_monetisation: bool | None = _q("The model is provided without monetisation (no price, no paid-only "
                                          "support or hosting tied to it, no personal data collected as payment).",
                                          f"{cite.act('Recital 103')}; {cite.guidelines('§4')}")
    # --- systemic risk only (Annex XI §2) ---
    evaluation_strategy: str | None = _q("Evaluation strategies, criteria and limitations (systemic risk).",
                                         f"{AI_ACT}, Annex XI §2 (1)")
    adversarial_testing: str | None = _q("Internal and/or external adversarial testing (red teaming) done.",
                                         f"{AI_ACT}, Annex XI §2 (2); Art. 55(1)(a)")
    system_architecture: str | None = _q("System architecture: how software components build on or feed into "
                                         "each other.", f"{AI_ACT}, Annex XI §2 (3)")
    # --- provider (training-content summary §1, Art. 54) ---
    authorised_representative: str | None = _q("Authorised representative in the Union (name and contact), for a "
                                               "provider established outside the EU.",
                                               f"{AI_ACT}, Art. 54(1); summary template §1")
    # --- energy and emissions (Annex XI §1 2(e); model card co2_eq_emissions) ---
    grid_carbon_intensity_g_per_kwh: float | None = _q("Carbon intensity of the electricity used, g CO2e per kWh "
                                                       "(for the model card's co2_eq_emissions).",
                                                       "Hugging Face model card metadata co2_eq_emissions")
    training_location: str | None = _q("Where the training ran (region).", "Hugging Face model card metadata "
                                       "co2_eq_emissions.geographical_location")
    # --- instructions for use (Art. 13(3)) ---
    excluded_uses: list[str] | None = _q("Uses the model must not be put to (foreseeable misuse).",
                                         f"{AI_ACT}, Art. 13(3)(b)(iii)")
    known_limitations: str | None = _q("Known limitations a deployer must know.", f"{AI_ACT}, Art. 13(3)(b)(ii)")
    output_interpretation: str | None = _q("How a deployer should interpret the output.",
                                           f"{AI_ACT}, Art. 13(3)(b)(vii)")
    human_oversight_measures: str | None = _q("Human oversight measures: how people understand, interpret, "
                                              "override and stop the system.", f"{AI_ACT}, Art. 13(3)(d), Art. 14")
    maintenance: str | None = _q("Expected lifetime and maintenance and update measures.",
                                 f"{AI_ACT}, Art. 13(3)(e)")
    logging: str | None = _q("How deployers collect, store and interpret the logs.", f"{AI_ACT}, Art. 13(3)(f), "
                             "Art. 12")
    # --- risk classification (Art. 5, Art. 6, Annex III, Art. 50) ---
    art5_screening_confirmed: bool | None = _q("A person checked the intended purpose against every Art. 5 practice "
                                               "and confirms none applies.", f"{AI_ACT}, Art. 5(1)")
    annex_iii_area: AnnexIIIArea | None = _q("Annex III area of the intended purpose ('none' or 1–8).",
                                             f"{AI_ACT}, Art. 6(2), Annex III")
    art6_3_narrow_procedural_task: bool | None = _q("It performs a narrow procedural task.", f"{AI_ACT}, Art. 6(3)(a)")
    art6_3_improves_completed_human_activity: bool | None = _q("It improves the result of a previously completed "
                                                               "human activity.", f"{AI_ACT}, Art. 6(3)(b)")
    art6_3_detects_patterns_without_replacing_review: bool | None = _q(
        "It detects decision-making patterns without replacing human review.", f"{AI_ACT}, Art. 6(3)(c)")
    art6_3_preparatory_task: bool | None = _q("It performs a preparatory task to an Annex III assessment.",
                                              f"{AI_ACT}, Art. 6(3)(d)")
    art6_3_profiling: bool | None = _q("It profiles natural persons.", f"{AI_ACT}, Art. 6(3) second subparagraph")
    interacts_with_natural_persons: bool | None = _q("The system interacts directly with people.",
                                                     f"{AI_ACT}, Art. 50(1)")
    emotion_recognition_or_biometric_categorisation: bool | None = _q("It recognises emotions or categorises "
                                                                      "people biometrically.", f"{AI_ACT}, Art. 50(3)")
    generates_deepfakes_or_public_interest_text: bool | None = _q("It produces deep fakes or text published to "
                                                                  "inform the public.", f"{AI_ACT}, Art. 50(4)")
    # --- risk register (Art. 9) ---
    risks: dict[str, RiskAnswer] | None = _q("Judgements on the register's risks, by risk id (e.g. R-TASK).",
                                             f"{AI_ACT}, Art. 9(2)(b)–(d), 9(5)")
    additional_risks: list[AdditionalRisk] | None = _q("Risks the evaluation did not cover.", f"{AI_ACT}, Art. 9(2)(a)")


QUESTIONS: dict[str, Any] = dict(Answers.model_fields)


def _type_name(value: Any) -> str:
    return {str: "text", int: "an integer", float: "a number", bool: "true/false", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _message(exc: ValidationError, data: dict) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        known = list(QUESTIONS) if len(loc) == 1 else list(RiskAnswer.model_fields) + list(
            AdditionalRisk.model_fields)
        near = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else " (see `ftaudit docs --answers-template`)"
        return f"unknown field {key!r}{hint}"
    if err["type"] == "missing":
        return f"{key}: missing required field"
    value: Any = data
    for part in err["loc"]:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    msg = err["msg"].removeprefix("Value error, ")
    return f"field {key!r}: {msg} (got {_type_name(value)})"


def parse_answers(data: Any, *, source: str = "answers") -> Answers:
    if data is None:
        return Answers()
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a mapping of answers at the top level, got {_type_name(data)}")
    try:
        return Answers.model_validate(data, strict=False)
    except ValidationError as exc:
        raise BadInput(f"{source}: {_message(exc, data)}") from None


def load_answers(path: str | Path | None) -> Answers:
    """Read and validate an answers file; a missing, unreadable or invalid file is one BadInput line."""
    if path is None:
        return Answers()
    path = Path(path)
    data = read_yaml(path, "answers file")
    return parse_answers(data, source=str(path))


def template() -> str:
    """A commented answers.yaml listing every question with its citation (all left empty)."""
    lines = ["# ftaudit docs --answers answers.yaml: what no evidence can say. Leave a key out (or empty) to",
             "# keep it marked as awaiting a human answer. Answers never overwrite evidence."]
    for name, f in QUESTIONS.items():
        cite = (f.json_schema_extra or {}).get("citation", "")
        lines.append(f"# {f.description} [{cite}]")
        if name == "risks":
            lines.append("# risks:\n#   R-TASK: {severity: medium, mitigation: '...', residual_risk: low}")
        elif name == "additional_risks":
            lines.append("# additional_risks:\n#   - {hazard: '...', likelihood: unlikely, severity: high, "
                         "mitigation: '...', residual_risk: low}")
        else:
            lines.append(f"# {name}:")
    return "\n".join(lines) + "\n"
