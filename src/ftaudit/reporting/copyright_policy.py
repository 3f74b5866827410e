"""The copyright policy (Art. 53(1)(c) AI Act): how Union copyright law is complied with, and how text-and-data-
mining reservations (Art. 4(3) Directive (EU) 2019/790) were identified and honoured for each data source.

Evidence fills what the run knows: each dataset with its provenance and licence, the crawled domains of the data
scan, and the offline TDM check (`ftaudit.data.tdm`) per domain. The commitments themselves are a draft the
provider adopts; who answers complaints, where the policy is published and the Code of Practice question are asked.
"""

from __future__ import annotations

from ftaudit.regulation import citations as cite
from ftaudit.reporting.completeness import finalise
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import Document, Section, Table, pct

CITE = f"{cite.act('Art. 53(1)(c)')}; {cite.dsm('Art. 4(3)')}"
COMMITMENTS = (
    "Only lawfully accessible content is used for training; technical protection measures and paywalls are not "
    "circumvented.",
    "Machine-readable reservations of rights for text and data mining are identified before training — robots.txt "
    "(RFC 9309), TDMRep, ai.txt, meta tags and licence terms — and content from sources that reserved their rights "
    "is excluded unless a licence covers it.",
    "Reservations found later are honoured in the next version of the training data (a new data version is written "
    "and the affected runs are listed from the ledger).",
    "Outputs that reproduce protected training content are mitigated (memorisation probes in the evaluation; "
    "acceptable-use terms for downstream providers).",
    "Rightsholders can lodge complaints at the contact point below; each complaint is answered and recorded.",
)


def copyright_policy_doc(ctx: Ctx) -> Document:
    r = ctx.record
    f = ctx.filler()
    doc = Document(document="copyright_policy", title="Copyright policy", citation=CITE, run_id=r.run_id,
                   record_updated_at=r.updated_at, ftaudit_version=r.ftaudit_version,
                   scope=ctx.scope("copyright policy"))

    policy = Section(id="1", title="1. Policy to comply with Union copyright law", citation=CITE,
                     note="Draft commitments for the provider to adopt or amend:\n"
                          + "\n".join(f"- {c}" for c in COMMITMENTS))
    policy.items.append(f.ask("1.published", "Where the policy is published", CITE, "copyright_policy"))
    policy.items.append(f.ask("1.contact", "Contact point for rightsholders' complaints",
                              f"{CITE}; {cite.CODE_OF_PRACTICE}", "copyright_contact"))
    policy.items.append(f.ask("1.code_of_practice", "Signatory of the General-Purpose AI Code of Practice",
                              cite.template("§3.1"), "code_of_practice_signatory"))

    sources = Section(id="2", title="2. Data sources and their terms", citation=cite.act("Annex XI §1 2(c)"))
    for i, d in enumerate(ctx.datasets(), 1):
        sources.items.append(f.item(f"2.{i}.licence", f"{d['name']}: licence or contractual basis", CITE,
                                    value=d.get("licence"), source="record.config.datasets[].licence",
                                    awaiting="no licence in the run config (datasets[].licence)", need="human"))
        sources.items.append(f.item(f"2.{i}.provenance", f"{d['name']}: provenance", CITE,
                                    value=d.get("provenance"), source="record.config.datasets[].provenance",
                                    awaiting="no provenance in the run config", need="human"))
    ev = r.data
    dom = ev.domains if ev else None
    sources.items.append(f.item(
        "2.domains", "Source domains found in the data", cite.template("§2.3"),
        value=(dom.domains_total if dom else None),
        display=(f"{dom.domains_total} domain(s) in {dom.records_with_domain} record(s); most relevant: "
                 + (", ".join(f"{x.domain} {pct(x.share)}" for x in dom.top) or "none") if dom else None),
        source="record.data.domains", awaiting="no data scan in the record"))

    tdm = Section(id="3", title="3. Reservations of rights for text and data mining", citation=CITE)
    t = ev.tdm if ev else None
    sheet = ev.datasheet if ev else None
    tdm.items.append(f.item(
        "3.check", "How reservations were identified", CITE, value=t.method if t else None,
        source="record.data.tdm", awaiting="no TDM check in the data scan (datasets[].tdm_reservations or "
                                           "`ftaudit data scan --tdm`)",
        question="tdm_measures"))
    if t is not None:
        tdm.items.append(f.item(
            "3.result", "Domains that reserve their rights", CITE, value=t.reserved_domains,
            display=(f"{t.reserved} reserved, {t.partial} partly reserved, {t.not_reserved} not reserved, "
                     f"{t.no_information} without saved information, of {len(t.domains)} domain(s); "
                     f"{t.records_from_reserved_domains} training record(s) from reserving domains"),
            source="record.data.tdm"))
        verdict = ev.policy
        blocked = bool(verdict and any(x.rule == "tdm_reserved" for x in verdict.reasons))
        tdm.items.append(f.item(
            "3.honoured", "How the reservations were honoured", CITE,
            value=("training was blocked by the data policy until the records of reserving domains are removed "
                   "or licensed" if blocked else "no training record comes from a domain that reserved its rights"
                   if not t.records_from_reserved_domains else "the data policy let records of reserving domains "
                   "through (block_on_tdm_reserved: false): a person must justify it"),
            source="record.data.policy"))
        tdm.tables.append(Table(title="TDM reservations per source domain",
                                headers=["domain", "records", "status", "signals"],
                                rows=[[d.domain, str(d.records), d.status.replace("_", " "),
                                       "; ".join(d.signals) or "—"] for d in t.domains]))
    tdm.items.append(f.item("3.datasheet", "Opt-outs honoured (datasheet)", cite.template("§3.1"),
                            value=sheet.tdm_opt_out_honoured if sheet else None,
                            source="record.data.datasheet.tdm_opt_out_honoured",
                            awaiting="answer tdm_opt_out_honoured in the datasheet", need="human"))
    doc.sections = [policy, sources, tdm]
    return finalise(doc)
