"""The public summary of training content on the AI Office template (Art. 53(1)(d); docs/regulation.md §2).

The data part (§1 modalities and size, §2 sources, §3 processing) comes from `ftaudit.data.summary`, which reads the
data scan and the datasheet; what the datasheet left open is marked for a human (answer it in the datasheet and
rescan, so the data evidence stays the single source). Provider, model, dependencies and dates come from the run.
"""

from __future__ import annotations

from typing import Any

from ftaudit.data.summary import NOT_ANSWERED, training_content_summary
from ftaudit.regulation import citations as cite
from ftaudit.regulation.citations import AI_ACT, TEMPLATE
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Filler, Item, Section, pct, show

CITE = f"{AI_ACT}, Art. 53(1)(d); {TEMPLATE}"

# Labels of the data part's keys, in template words.
LABELS = {
    "modalities": "Modalities, size band and content type",
    "latest_acquisition_date": "Latest date of data acquisition",
    "linguistic_characteristics": "Linguistic and other characteristics",
    "2.1_public_datasets": "2.1 Publicly available datasets",
    "2.2.1_licensed_from_rightsholders": "2.2.1 Data commercially licensed by rightsholders or their "
                                         "representatives",
    "2.2.2_other_private_third_party_data": "2.2.2 Private datasets obtained from other third parties",
    "2.3_crawled_and_scraped_data": "2.3 Data crawled and scraped from online sources",
    "2.4_user_data": "2.4 User data",
    "2.5_synthetic_data": "2.5 Synthetic data",
    "2.6_other": "2.6 Other sources",
    "3.1_respect_of_tdm_opt_outs": "3.1 Respect of reservation of rights from text and data mining",
    "3.2_removal_of_illegal_content": "3.2 Removal of illegal content",
    "3.3_other": "3.3 Other information on data processing",
}
SECTION_CITES = {"1": cite.template("§1"), "2": cite.template("§2"), "3": cite.template("§3")}


def _open_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every NOT_ANSWERED leaf."""
    if value == NOT_ANSWERED:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _open_fields(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _open_fields(v, f"{path}[{i}]")]
    return []


def _data_item(key: str, value: Any, cite: str) -> Item:
    label = LABELS.get(key, key.replace("_", " "))
    open_ = _open_fields(value)
    if value == NOT_ANSWERED:
        return Item(id=key, label=label, citation=cite, status="awaiting_human", display="awaiting a human answer "
                    "in the datasheet (then rerun `ftaudit data scan`)", source="record.data.datasheet")
    display = _display(key, value)
    if open_:
        return Item(id=key, label=label, citation=cite, status="awaiting_human", value=value,
                    display=display + f" — open in the datasheet: {', '.join(open_)}", source="record.data.datasheet")
    return Item(id=key, label=label, citation=cite, status="evidence", value=value, display=display,
                source="record.data (scan and datasheet)")


def _display(key: str, value: Any) -> str:
    if key == "modalities":
        return "; ".join(f"{m['modality']}: {m['size_band']} ({show(m['tokens'])} {m['token_count_method']}, "
                         f"{show(m['records'])} records); content: {show(m['content_type'])}" for m in value)
    if key == "linguistic_characteristics":
        langs = ", ".join(f"{x['language']} {pct(x['share_of_characters'])}" for x in value.get("languages", []))
        return f"{langs or 'no language detected'} (method: {value.get('method') or 'n/a'})"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None or v == [] or k.endswith("_method") and v is None:
                continue
            if k == "top_domains":
                v = ", ".join(f"{d['domain']} {pct(d['share_of_content'])}" for d in v) or "none"
            parts.append(f"{k.replace('_', ' ')}: {show(v)}")
        return "; ".join(parts)
    return show(value)


def training_content_summary_doc(ctx: Ctx) -> Document:
    r = ctx.record
    f: Filler = ctx.filler()
    doc = Document(document="training_content_summary", title="Public summary of training content", citation=CITE,
                   run_id=r.run_id, record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version,
                   scope=ctx.scope("training-content summary") + " Reading: for a modification the summary covers "
                   "the fine-tuning data (recital 109).")
    head = Section(id="0", title="Header", citation=cite.template("header"))
    head.items.append(f.item("0.version", "Summary version", cite.template("header"), value=f"run {r.run_id}",
                             source="record.run_id"))
    head.items.append(f.item("0.last_update", "Last update", cite.template("header"),
                             value=r.updated_at.date().isoformat(),
                             source="record.updated_at"))

    g = Section(id="1", title="1. General information", citation=SECTION_CITES["1"])
    prov = ctx.conf("provider") or {}
    cite1 = cite.template("§1")
    g.items.append(f.item("1.provider", "Provider name and contact", cite1,
                          value=(f"{prov['name']}" + (f", {prov['contact']}" if prov.get("contact") else "")
                                 if prov.get("name") else None), source="record.config.provider",
                          awaiting="no provider in the run config"))
    if prov.get("established_in_eu") is True:
        g.items.append(f.na("1.authorised_representative", "Authorised representative", f"{AI_ACT}, Art. 54(1)",
                            "the provider is established in the EU"))
    else:
        g.items.append(f.ask("1.authorised_representative", "Authorised representative", f"{AI_ACT}, Art. 54(1)",
                             "authorised_representative"))
    name = ctx.model_name
    version = ctx.answer_map.get("model_version")
    f.used.add("model_version")
    if name and version:
        g.items.append(Item(id="1.model_name", label="Versioned model name", citation=cite1, status="answered",
                            value=f"{name} {version}", display=f"{name} {version}", question="model_version",
                            source="record.model.output_name + answers.model_version"))
    elif name:
        g.items.append(f.ask("1.model_name", "Versioned model name", cite1, "model_version",
                             note=f"model name {name}; its version awaits an answer"))
    else:
        g.items.append(f.item("1.model_name", "Versioned model name", cite1, awaiting="no model name in the record"))
    base = ctx.base_model_name
    rev = r.model.base_model_revision
    g.items.append(f.item("1.dependencies", "Model dependencies (the base model of this modification)", cite1,
                          value=(f"{base}" + (f" @ {rev}" if rev else "") if base else None),
                          source="record.config.base_model", awaiting="no base model recorded"))
    g.items.append(f.ask("1.eu_market_date", "Date of placement on the EU market", cite1, "eu_market_date"))
    ev = r.data
    data = training_content_summary(ev) if ev else None
    if data:
        for key, value in data["section_1_general_information"].items():
            g.items.append(_data_item(key, value, cite1))
    g.items.append(f.ask("1.3.continuous_training", "Is the model continuously trained on new data after its "
                         "placement on the market?", cite.template("§1.3"), "continuous_training"))
    g.items.append(f.ask("1.3.other_characteristics", "Other relevant characteristics of the training data",
                         cite.template("§1.3"), "other_characteristics"))
    doc.sections += [head, g]
    asked = {
        "2": [f.ask("2.3.purposes", "2.3 Purposes and behaviour of the crawlers", cite.template("§2.3"),
                    "crawler_purposes"),
              f.ask("2.3.content", "2.3 Type of content and online sources crawled", cite.template("§2.3"),
                    "crawled_content_description"),
              f.ask("2.3.modalities", "2.3 Modalities of the crawled data", cite.template("§2.3"),
                    "crawled_modalities"),
              f.ask("2.4.model_interactions", "2.4 Data from user interactions with the model used for training?",
                    cite.template("§2.4"), "user_data_model_interactions"),
              f.ask("2.4.other_services", "2.4 Data from user interactions with the provider's other services "
                    "used for training?", cite.template("§2.4"), "user_data_other_services"),
              f.ask("2.5.own_models", "2.5 Synthetic data generated by the provider's own models",
                    cite.template("§2.5"), "synthetic_own_models"),
              f.ask("2.5.third_party_models", "2.5 Synthetic data generated by third-party models",
                    cite.template("§2.5"), "synthetic_third_party_models")],
        "3": [f.ask("3.1.code_of_practice", "3.1 Signatory of the Code of Practice (copyright commitments)",
                    cite.template("§3.1"), "code_of_practice_signatory")],
    }

    for n, key, title in (("2", "section_2_data_sources", "2. List of data sources"),
                          ("3", "section_3_data_processing", "3. Relevant data processing aspects")):
        s = Section(id=n, title=title, citation=SECTION_CITES[n])
        if data:
            for k, v in data[key].items():
                s.items.append(_data_item(k, v, cite.template(f"§{k.split('_')[0]}")))
        else:
            s.items.append(f.item(f"{n}.all", title, SECTION_CITES[n], awaiting="no data scan in the record "
                                  "(run `ftaudit data scan` or the pipeline)"))
        s.items += asked[n]
        doc.sections.append(s)
    return finalise(doc)
