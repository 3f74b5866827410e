"""A CycloneDX 1.6 ML-BOM (`ml_bom.cdx.json`): the fine-tuned model, its base model, its datasets (by sha256) and
the software that made it, linked by dependencies, with a model card block (task, datasets, metrics).

Validated against CycloneDX's own 1.6 JSON schema (cyclonedx-python-lib) before it is written: an invalid BOM is a
bug, reported as a runtime failure, never written. Energy goes in properties: the schema's energyProviders entry
requires the utility and energy source, which nobody measured (nothing is invented).
"""

from __future__ import annotations

import uuid
from typing import Any

from ftaudit.errors import RuntimeFailure
from ftaudit.reporting.context import Ctx
from ftaudit.reporting.document import show

SPEC_VERSION = "1.6"
WEIGHT_KINDS = ("model", "adapter")


def _purl(name: str, version: str) -> str:
    base = version.split("+")[0]
    return f"pkg:pypi/{name.lower().replace('_', '-')}@{base}"


def build_bom(ctx: Ctx) -> dict[str, Any]:
    r = ctx.record
    model_ref = f"model:{ctx.model_name or r.run_id}"
    components: list[dict[str, Any]] = []
    depends: list[str] = []

    base_ref = None
    if ctx.base_model_name:
        base_ref = f"base-model:{ctx.base_model_name}"
        base: dict[str, Any] = {"type": "machine-learning-model", "bom-ref": base_ref, "name": ctx.base_model_name}
        rev = r.model.base_model_revision or (ctx.conf("base_model") or {}).get("revision")
        if rev:
            base["version"] = rev
        if ctx.base_model_hub_id:
            base["externalReferences"] = [{"type": "distribution",
                                           "url": f"https://huggingface.co/{ctx.base_model_hub_id}"}]
        if r.decision:
            o = r.decision.original
            base["properties"] = [{"name": "ftaudit:original_training_flops",
                                   "value": "unknown" if o.flops is None else repr(o.flops)},
                                  {"name": "ftaudit:original_training_flops_status", "value": o.status}]
        components.append(base)
        depends.append(base_ref)

    data_refs = []
    hashes = {a.path: a.sha256 for a in r.artefacts}
    files = r.data.files if r.data else []
    for i, ds in enumerate(ctx.datasets()):
        ref = f"data:{ds['name']}:{i}"
        comp: dict[str, Any] = {"type": "data", "bom-ref": ref, "name": ds["name"] or f"dataset {i}"}
        fp = next((x for x in files if x.role == "train" and x.path.endswith(ds["file"] or "\0")), None)
        sha = fp.sha256 if fp else next((h for p, h in hashes.items() if ds["file"] and p.endswith(ds["file"])), None)
        if sha:
            comp["hashes"] = [{"alg": "SHA-256", "content": sha}]
        data: dict[str, Any] = {"type": "dataset", "name": ds["name"] or f"dataset {i}"}
        if ds.get("provenance"):
            data["description"] = ds["provenance"]
        if r.data:
            data["classification"] = ("contains personal data" if r.data.findings.records_with_personal_data
                                      else "no personal data found by the scan")
            types = sorted({t.type for t in r.data.findings.by_type if t.category in ("personal_data",
                                                                                       "special_category")})
            if types:
                data["sensitiveData"] = types
        comp["data"] = [data]
        if ds.get("licence"):
            comp["licenses"] = [{"license": {"name": ds["licence"]}}]
        props = []
        if fp:
            props.append({"name": "ftaudit:records", "value": str(fp.records)})
        if props:
            comp["properties"] = props
        components.append(comp)
        data_refs.append(ref)
        depends.append(ref)

    packages = dict(r.environment.packages)
    if r.evaluation:
        packages = {**r.evaluation.versions, **packages}
    for name, version in sorted(packages.items()):
        ref = f"lib:{name}"
        components.append({"type": "library" if name != "ftaudit" else "application", "bom-ref": ref, "name": name,
                           "version": version, "purl": _purl(name, version)})
        depends.append(ref)

    model: dict[str, Any] = {"type": "machine-learning-model", "bom-ref": model_ref,
                             "name": ctx.model_name or f"run {r.run_id}"}
    if ctx.answers.model_version:
        model["version"] = ctx.answers.model_version
    if ctx.answers.licence:
        model["licenses"] = [{"license": {"name": ctx.answers.licence}}]
    prov = ctx.conf("provider") or {}
    if prov.get("name"):
        model["supplier"] = {"name": prov["name"]}
    if base_ref:
        model["pedigree"] = {"ancestors": [{"type": "machine-learning-model", "name": ctx.base_model_name,
                                            "bom-ref": f"ancestor:{ctx.base_model_name}"}]}
    weights = [a for a in r.artefacts if a.kind in WEIGHT_KINDS]
    if weights:
        model["components"] = [{"type": "file", "bom-ref": f"file:{a.path}", "name": a.path,
                                "hashes": [{"alg": "SHA-256", "content": a.sha256}]} for a in weights]
    card: dict[str, Any] = {"modelParameters": {
        "approach": {"type": "supervised"}, "task": "text-generation",
        "inputs": [{"format": "text"}], "outputs": [{"format": "text"}]}}
    if ctx.method:
        card["modelParameters"]["modelArchitecture"] = f"{ctx.base_model_name or 'base model'} + {ctx.method}"
    if data_refs:
        card["modelParameters"]["datasets"] = [{"ref": x} for x in data_refs]
    if r.evaluation:
        metrics = []
        for fam in r.evaluation.families:
            for m in fam.metrics:
                if m.tuned.value is None:
                    continue
                pm: dict[str, Any] = {"type": m.metric, "value": repr(m.tuned.value), "slice": "tuned"}
                if m.tuned.ci_low is not None and m.tuned.ci_high is not None:
                    pm["confidenceInterval"] = {"lowerBound": repr(m.tuned.ci_low), "upperBound": repr(m.tuned.ci_high)}
                metrics.append(pm)
        if metrics:
            card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    purpose = ctx.conf("purpose", "intended_purpose")
    if purpose:
        card["considerations"] = {"useCases": [purpose]}
    props = []
    c = r.compute
    if c and c.regulatory_flops is not None:
        props += [{"name": "ftaudit:regulatory_flops", "value": repr(c.regulatory_flops)},
                  {"name": "ftaudit:regulatory_flops_display", "value": show(c.regulatory_flops)}]
    if c and c.energy and c.energy.kwh is not None:
        props += [{"name": "ftaudit:energy_kwh", "value": repr(c.energy.kwh)},
                  {"name": "ftaudit:energy_kind", "value": c.energy.kind}]
    if r.decision:
        props += [{"name": "ftaudit:gpai_role", "value": r.decision.role},
                  {"name": "ftaudit:gpai_rule_citation", "value": r.decision.citation}]
    if props:
        card["properties"] = props
    model["modelCard"] = card

    from ftaudit import __version__
    return {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        # Stable per run: re-rendering the same record gives the same BOM (and the same hash in the ledger).
        "serialNumber": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'ftaudit:run:' + r.run_id)}",
        "version": 1,
        "metadata": {"timestamp": r.updated_at.isoformat().replace("+00:00", "Z"),
                     "tools": {"components": [{"type": "application", "name": "ftaudit", "version": __version__}]},
                     "component": model},
        "components": components,
        "dependencies": [{"ref": model_ref, "dependsOn": depends}] + [{"ref": x} for x in depends],
    }


def validate_bom(text: str) -> None:
    """Raise RuntimeFailure when `text` is not a valid CycloneDX 1.6 JSON BOM (strict schema)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise RuntimeFailure(f"ml_bom.cdx.json does not validate against CycloneDX 1.6: {str(error)[:300]}")
