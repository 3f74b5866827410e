"""What every document builder reads: the record, the run directory, the answers, and the items that several
documents share (intended purpose, architecture, data, compute, energy) — built once here so that Annex XI, Annex
XII, the model card and the instructions for use never state the same fact differently.

Paths shown in documents are file names only: an absolute path can carry a person's user name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftaudit.record import RunRecord
from ftaudit.regulation.citations import AI_ACT, COMPUTE_COUNTS, COMPUTE_ROLE_BASIS, GUIDELINES, guidelines
from ftaudit.regulation.decision import ROLE_LABELS
from ftaudit.reporting.answers import Answers
from ftaudit.reporting.document import Filler, Item, pct, show, sig2

XI = f"{AI_ACT}, Annex XI §1"
XII = f"{AI_ACT}, Annex XII"


def _name(path: str | None) -> str | None:
    return Path(path).name if path else None


@dataclass
class Ctx:
    record: RunRecord
    run_dir: Path
    answers: Answers = field(default_factory=Answers)
    monitor_plan: Any = None  # ftaudit.monitor.plan.MonitorPlan from monitor.yaml, when given

    def __post_init__(self) -> None:
        self.answer_map: dict[str, Any] = self.answers.model_dump(exclude_none=True)
        self.cfg: dict[str, Any] = self.record.config or {}

    def filler(self) -> Filler:
        return Filler(self.answer_map)

    # --------------------------------------------------------------------------------------- plain facts
    def conf(self, *keys: str) -> Any:
        node: Any = self.cfg
        for k in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(k)
        return node

    @property
    def model_name(self) -> str | None:
        return self.record.model.output_name or self.conf("name")

    @property
    def base_model_name(self) -> str | None:
        bm = self.conf("base_model") or {}
        return bm.get("id") or bm.get("registry_id") or bm.get("package") or _name(self.record.model.base_model)

    @property
    def base_model_hub_id(self) -> str | None:
        """A Hugging Face repository id, only when the config named one (a local path is not an id)."""
        bm = self.conf("base_model") or {}
        return bm.get("id") or bm.get("registry_id")

    @property
    def method(self) -> str | None:
        return self.conf("method", "type") or (self.record.compute.model.setup.get("method")
                                               if self.record.compute and self.record.compute.model else None)

    def datasets(self, key: str = "datasets") -> list[dict[str, Any]]:
        """The training datasets of the config, or its `eval_datasets` (testing and validation data)."""
        out = []
        for ds in self.conf(key) or []:
            out.append({"name": ds.get("name") or _name(ds.get("path")), "file": _name(ds.get("path")),
                        "format": ds.get("format"), "provenance": ds.get("provenance"), "licence": ds.get("licence"),
                        "consent": ds.get("consent")})
        return out

    def roles_text(self) -> str | None:
        d = self.record.decision
        return ROLE_LABELS.get(d.role, d.role) if d else None

    def train_log(self) -> list[dict[str, Any]]:
        """logs/train.jsonl of the run (the Trainer's log lines with the lineage FLOP), [] when absent."""
        path = self.run_dir / "logs" / "train.jsonl"
        out = []
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash: skip it, the others still hold
                if isinstance(row, dict):
                    out.append(row)
        except OSError:
            return []
        return out

    # --------------------------------------------------------------------------------------- shared items
    def purpose_items(self, f: Filler, prefix: str, cite: str) -> list[Item]:
        p = self.conf("purpose") or {}
        purpose = p.get("intended_purpose")
        if purpose and p.get("task"):
            purpose = f"{purpose} (task: {p['task']})"
        return [
            f.item(f"{prefix}.intended_tasks", "Tasks the model is intended to perform", cite, value=purpose,
                   source="record.config.purpose", awaiting="no run config in the record"),
            f.item(f"{prefix}.deployment_context", "Deployment context", cite, value=p.get("deployment_context"),
                   source="record.config.purpose.deployment_context", awaiting="no deployment context in the config",
                   question=None),
            f.ask(f"{prefix}.integration_systems", "AI systems it can be integrated into", cite,
                  "integration_systems"),
        ]

    def architecture_items(self, f: Filler, prefix: str, cite: str) -> list[Item]:
        c = self.record.compute
        m = c.model if c else None
        n = m.n_parameters if m else None
        nt = m.n_trainable_parameters if m else None
        missing = "no compute evidence (the run was not metered)"
        return [
            f.item(f"{prefix}.base_model", "Base model (the model that was modified)", cite,
                   value=self.base_model_name, source="record.config.base_model", awaiting="no base model recorded"),
            f.item(f"{prefix}.architecture", "Architecture", cite, value=self.record.model.architecture,
                   display=self._architecture(), source="record.model.architecture (the base model's config.json)",
                   question="architecture_description", need="human"),
            f.item(f"{prefix}.parameters", "Number of parameters", cite, value=n, source="record.compute.model",
                   awaiting=missing),
            f.item(f"{prefix}.trainable_parameters", "Parameters trained in this modification", cite, value=nt,
                   source="record.compute.model", awaiting=missing,
                   display=None if not (n and nt) else f"{sig2(nt)} ({pct(nt / n)} of all parameters)"),
            f.item(f"{prefix}.method", "Modification method", cite,
                   value=(m.method if m and m.method else self.method), source="record.compute.model.method",
                   awaiting=missing),
        ]

    def _architecture(self) -> str | None:
        a = self.record.model.architecture
        if not a:
            return None
        get = (lambda *keys: next((a[k] for k in keys if k in a), None))  # noqa: E731
        parts = [f"{get('model_type')} decoder-only transformer"]
        for label, keys in (("layers", ("num_hidden_layers", "n_layer")), ("hidden size", ("hidden_size", "n_embd")),
                            ("attention heads", ("num_attention_heads", "n_head")),
                            ("key-value heads", ("num_key_value_heads",)), ("MLP size", ("intermediate_size",)),
                            ("vocabulary", ("vocab_size",)),
                            ("positions", ("max_position_embeddings", "n_positions")),
                            ("experts", ("num_local_experts", "num_experts")),
                            ("experts per token", ("num_experts_per_tok",))):
            value = get(*keys)
            if value is not None:
                parts.append(f"{label} {value:,}" if isinstance(value, int) else f"{label} {value}")
        method = self.method
        if method in ("lora", "qlora"):
            parts.append(f"modified with a {method.upper()} adapter")
        return ", ".join(parts)

    def modality_items(self, f: Filler, prefix: str, cite: str) -> list[Item]:
        formats = sorted({d.format for d in (self.record.data.files if self.record.data else []) if d.format} |
                         {d["format"] for d in self.datasets() if d.get("format")})
        value = None
        if self.record.data or self.cfg:
            value = "text in, text out (causal language model trained on text records"
            value += f" in {', '.join(formats)})" if formats else ")"
        ctx_window = None
        if self.record.evaluation:
            windows = {m.context_window for m in self.record.evaluation.models if m.role == "tuned"}
            ctx_window = max(windows) if windows else None
        items = [f.item(f"{prefix}.modality", "Input and output modality and format", cite, value=value,
                        source="record.config.datasets / record.data.files", awaiting="no data or config recorded")]
        items.append(f.item(f"{prefix}.context_window", "Maximum input size (context window, tokens)",
                            f"{XII} 2(b)", value=ctx_window, source="record.evaluation.models",
                            awaiting="no evaluation recorded the tuned model's context window",
                            question="context_window"))
        train_len = self.conf("training", "max_seq_len")
        if train_len:
            items.append(f.item(f"{prefix}.training_sequence_length", "Longest training sequence (tokens)", cite,
                                value=train_len, source="record.config.training.max_seq_len"))
        return items

    def licence_item(self, f: Filler, id: str, cite: str) -> Item:
        return f.ask(id, "Licence", cite, "licence")

    def software_item(self, f: Filler, id: str, cite: str) -> Item:
        pk = dict(self.record.environment.packages)
        if self.record.evaluation:
            pk = {**self.record.evaluation.versions, **pk}
        if self.record.environment.python:
            pk = {"python": self.record.environment.python, **pk}
        return f.item(id, "Versions of relevant software", cite, value=pk or None,
                      display=", ".join(f"{k} {v}" for k, v in pk.items()), source="record.environment.packages",
                      awaiting="no environment recorded")

    def data_items(self, f: Filler, prefix: str, cite: str) -> list[Item]:
        ev = self.record.data
        sheet = ev.datasheet if ev else None
        ds = self.datasets()
        scan = "no data scan in the record (run `ftaudit data scan` or the pipeline)"
        items = [
            f.item(f"{prefix}.datasets", "Datasets", cite,
                   value=[d["name"] for d in ds] or ([x.path for x in ev.files] if ev else None),
                   display="; ".join(d["name"] for d in ds) if ds else None,
                   source="record.config.datasets", awaiting="no datasets in the record"),
            f.item(f"{prefix}.type", "Type of data", cite,
                   value=(sheet.description if sheet and sheet.description else None),
                   source="record.data.datasheet.description", need="human" if ev else "evidence",
                   awaiting=("answer `description` in the datasheet, then rerun `ftaudit data scan`" if ev else scan)),
            f.item(f"{prefix}.provenance", "Provenance", cite,
                   value=([f"{d['name']}: {d['provenance']}" for d in ds if d.get("provenance")] or
                          (sheet.source if sheet and sheet.source else None)),
                   source="record.config.datasets[].provenance / datasheet.source",
                   awaiting="no provenance in the config or datasheet"),
            f.item(f"{prefix}.obtained", "How the data was obtained and selected", cite,
                   value=sheet.collection_method if sheet else None,
                   source="record.data.datasheet.collection_method", need="human" if ev else "evidence",
                   awaiting=("answer `collection_method` in the datasheet, then rerun `ftaudit data scan`" if ev
                             else scan)),
            f.item(f"{prefix}.curation", "Curation methodologies (cleaning, filtering)", cite,
                   value=self._curation(), source="record.data", awaiting=scan),
            f.item(f"{prefix}.data_points", "Number of data points", cite,
                   value=(ev.counts.records if ev else None),
                   display=(f"{sig2(ev.counts.records)} records, {sig2(ev.counts.tokens)} "
                            f"{ev.tokens.unit if ev.tokens else 'tokens'}" if ev else None),
                   source="record.data.counts", awaiting=scan),
            f.item(f"{prefix}.scope", "Scope and main characteristics (languages)", cite,
                   value=([{"language": x.language, "share": x.share} for x in ev.languages] if ev else None),
                   display=(", ".join(f"{x.language} {pct(x.share)}" for x in ev.languages) if ev else None),
                   source="record.data.languages", awaiting=scan),
            f.item(f"{prefix}.unsuitable", "Measures to detect unsuitable data (personal data, secrets)", cite,
                   value=self._screening(), source="record.data.findings / record.data.policy", awaiting=scan,
                   question="data_curation_measures"),
            f.item(f"{prefix}.biases", "Identifiable biases (representation in the data)", cite,
                   value=self._bias(), source="record.data.bias", awaiting="no bias statistics in the data scan"),
        ]
        evals = self.datasets("eval_datasets")
        ev_rec = self.record.evaluation
        leak = ev.leakage if ev else None
        items.append(f.item(
            f"{prefix}.testing_validation", "Testing and validation data", cite,
            value=[{k: d[k] for k in ("name", "provenance", "licence") if d.get(k)} for d in evals] or None,
            display=("; ".join(f"{d['name']}" + (f" ({d['provenance']})" if d.get("provenance") else "")
                               for d in evals)
                     + (f"; held out from training: {leak.exact_overlap} exact and {leak.near_overlap} near "
                        f"overlaps of {leak.eval_records} records" if leak else "")
                     + (f"; used by the evaluation ({', '.join(ev_rec.suites)})" if ev_rec else "")) if evals else None,
            source="record.config.eval_datasets / record.data.leakage",
            awaiting="no eval_datasets in the run config (testing and validation data)"))
        return items

    def _curation(self) -> str | None:
        ev = self.record.data
        if not ev:
            return None
        parts = []
        if ev.datasheet and ev.datasheet.preparation:
            parts.append(ev.datasheet.preparation)
        if ev.duplicates:
            d = ev.duplicates
            parts.append(f"duplicate check ({d.method}): {d.exact_duplicate_records} exact and "
                         f"{d.near_duplicate_records} near-duplicate records ({pct(d.duplicate_rate)})")
        q = ev.quality
        parts.append(f"quality check: {q.empty_records} empty and {q.garbled_records} garbled records")
        if ev.leakage:
            parts.append(f"train/eval overlap: {ev.leakage.exact_overlap} exact, {ev.leakage.near_overlap} near "
                         f"of {ev.leakage.eval_records} eval records")
        return "; ".join(parts)

    def _screening(self) -> str | None:
        ev = self.record.data
        if not ev:
            return None
        fs = ev.findings
        types = ", ".join(f"{t.type} {t.count}" for t in fs.by_type) or "none"
        text = (f"every record scanned for personal data, secrets and special-category terms: "
                f"{fs.records_with_personal_data} records with personal data, {fs.records_with_secrets} with "
                f"secrets, {fs.records_with_special_categories} with special-category data about a person "
                f"(findings by type: {types})")
        if fs.detection is not None:
            text += f"; detection: {fs.detection.note}"
        if ev.policy:
            text += f"; data policy verdict: {ev.policy.status}"
        return text

    def _bias(self) -> str | None:
        b = self.record.data.bias if self.record.data else None
        if not b:
            return None
        dims = []
        for d in b.dimensions:
            groups = ", ".join(f"{g.group} {pct(g.share_of_dimension)}" for g in d.groups[:6])
            dims.append(f"{d.dimension}: {groups}")
        return f"{b.method}. " + ("; ".join(dims) if dims else "no group mentions found") + f". {b.disclaimer}"

    def compute_breakdown(self) -> list[dict[str, Any]] | None:
        """The policy's training passes, then every further line the meter reported (reference, generation, reward,
        value), each with whether it counts and the citation or reading that says so."""
        c = self.record.compute
        if c is None or c.flops is None:
            return None
        lines = [{"role": "policy", "flops": c.flops.regulatory, "counted": True,
                  "basis": COMPUTE_ROLE_BASIS["policy"]}]
        lines += [{"role": line.role, "flops": line.flops.regulatory, "counted": line.counted, "basis": line.basis}
                  for line in c.breakdown]
        return lines

    def objective_text(self) -> str | None:
        """What the run optimised, from the meter's objective (else the config's loss setting)."""
        c = self.record.compute
        objective = c.objective if c and c.objective else None
        if objective == "dpo":
            against = (", measured against a frozen reference model" if any(line.role == "reference"
                                                                           for line in c.breakdown) else "")
            return ("preference optimisation (DPO family: DPO, KTO, ORPO): the policy's log-probabilities of preferred "
                    f"over rejected completions{against}")
        if objective == "grpo":
            return ("reinforcement learning (GRPO family): completions sampled from the policy, scored by the reward "
                    "functions, group-relative advantages; a KL term to a frozen reference when beta > 0")
        t = self.conf("training") or {}
        if not t and objective is None:
            return None
        return ("next-token cross-entropy on the completion/assistant tokens only" if t.get("completion_only_loss")
                else "next-token cross-entropy on all tokens")

    def compute_items(self, f: Filler, prefix: str, cite: str) -> list[Item]:
        c = self.record.compute
        d = self.record.decision
        missing = "no compute evidence (the run was not metered)"
        items = [
            f.item(f"{prefix}.flops", "Training compute of this run (regulatory figure, FLOP)", cite,
                   value=c.regulatory_flops if c else None,
                   display=f"{show(c.regulatory_flops)} FLOP" if c and c.regulatory_flops is not None else None,
                   source="record.compute.regulatory_flops", awaiting=missing),
            f.item(f"{prefix}.flops_method", "How the compute was measured", f"{GUIDELINES}, Annex A.2",
                   value=c.regulatory_flops_method if c else None, source="record.compute.regulatory_flops_method",
                   awaiting=missing),
            f.item(f"{prefix}.flops_breakdown", "Which compute counted, and why", COMPUTE_COUNTS,
                   value=self.compute_breakdown(), source="record.compute.breakdown", awaiting=missing,
                   display="; ".join(f"{line['role']} {show(line['flops'])} FLOP "
                                     f"({'counted' if line['counted'] else 'not counted'}: {line['basis']})"
                                     for line in self.compute_breakdown() or [])),
            f.item(f"{prefix}.lineage_flops", "Cumulative compute of the model lineage (FLOP)",
                   f"{GUIDELINES}, §3.2 (reading: modifications add up)",
                   value=c.lineage.cumulative_flops if c and c.lineage else None,
                   display=(f"{show(c.lineage.cumulative_flops)} FLOP over {len(c.lineage.runs)} run(s)"
                            if c and c.lineage else None), source="record.compute.lineage", awaiting=missing),
            f.item(f"{prefix}.training_time", "Training time (seconds)", cite,
                   value=c.training_seconds if c else None, source="record.compute.training_seconds",
                   awaiting=missing),
            f.item(f"{prefix}.hardware", "Hardware", cite, value=self._hardware(), source="record.compute.hardware",
                   awaiting=missing),
            f.item(f"{prefix}.decision", "GPAI role from compute", d.citation if d else f"{GUIDELINES}, §3.2",
                   value=d.role if d else None,
                   display=(f"{self.roles_text()}: {d.display['modification_flops']} FLOP against a threshold of "
                            f"{d.display['threshold_flops']} FLOP ({d.rule})" if d else None),
                   source="record.decision", awaiting="no decision in the record"),
        ]
        if d is None:
            return items
        basis = {"declared": "as declared by the provider (base_is_gpai)",
                 "indicative_criterion": "by the 1e23 FLOP indicative criterion",
                 "systemic_risk": "as a GPAI model with systemic risk",
                 "unknown_compute_fallback": "by the fallback for an unknown original compute"}[d.base_is_gpai_basis]
        items.append(f.item(f"{prefix}.base_is_gpai", "The base model is treated as a GPAI model",
                            guidelines("¶17–20, §3.2"), value=d.base_is_gpai,
                            display=f"{'yes' if d.base_is_gpai else 'no'}, {basis}", source="record.decision"))
        if d.alternative is not None:
            items.append(f.item(f"{prefix}.alternative_reading", "The other reading (labelled: reading)",
                                d.alternative.citation, value=d.alternative.model_dump(mode="json"),
                                display=f"reading: {d.alternative.text}", source="record.decision.alternative"))
        if d.estimates:
            items.append(f.item(
                f"{prefix}.original_estimates", "Estimates of the original model's training compute",
                guidelines("Annex A.2"), value=[o.model_dump(mode="json") for o in d.estimates],
                display="; ".join(f"{o.method} {show(o.original_flops)} FLOP"
                                  f"{'' if o.verified else ' (unverified inputs)'} → {o.role}" for o in d.estimates)
                + (f"; they disagree, {'the provider picked' if d.estimate_selection == 'user' else 'the stricter'}"
                   f" ({d.estimate_used}) decides" if d.estimates_disagree else ""),
                source="record.decision.estimates"))
        return items

    def _hardware(self) -> str | None:
        c = self.record.compute
        if not c or not c.hardware:
            return None
        h = c.hardware
        gpus = ", ".join(sorted({g.name for g in h.gpus}))
        text = f"{h.n_gpus} GPU(s)" + (f" ({gpus})" if gpus else "") + f"; {h.statement}"
        if h.flops_measured_utilisation:
            text += f"; hardware cross-check {show(h.flops_measured_utilisation)} FLOP (N·L·H·U, Annex A.2)"
        return text

    def energy_item(self, f: Filler, id: str, cite: str) -> Item:
        e = self.record.compute.energy if self.record.compute else None
        value = e.kwh if e and e.kwh is not None else None
        return f.item(id, "Energy consumption (kWh)", cite, value=value,
                      display=f"{show(value)} kWh ({e.method})" if value is not None else None,
                      source="record.compute.energy",
                      awaiting=("energy could not be measured or estimated" if e else "no compute evidence"))

    def scope(self, document: str) -> str:
        """Whom the document binds, from the decision (Art. 53, recital 109)."""
        d = self.record.decision
        if d is None:
            return ("Awaiting evidence: the record holds no GPAI-role decision, so whether this document is owed is "
                    "not known yet. It describes this run's modification.")
        if d.role == "downstream_modifier":
            return (f"Not owed by you: the lineage's compute ({d.display['modification_flops']} FLOP) does not exceed "
                    f"the threshold ({d.display['threshold_flops']} FLOP), so you remain a downstream modifier and "
                    f"the {document} duty stays with the original provider ({d.citation}). Written voluntarily, "
                    "for the modification only.")
        whole = any(o.scope == "whole_model" for o in d.obligations)
        if whole:
            return (f"Owed by you as the {self.roles_text()}, covering the whole model: the original was likely not "
                    f"a GPAI model (reading; {d.citation}).")
        return (f"Owed by you as the {self.roles_text()}, limited to the modification ({AI_ACT}, recital 109; "
                f"{d.citation}).")
