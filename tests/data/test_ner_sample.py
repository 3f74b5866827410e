"""NER on a seeded uniform sample (`--ner sample:N`): which records had NER is reproducible and stated, the
names/places rates come with 95 % intervals that hold the rate a full NER pass measures, and the sample is the same
for any number of workers."""

from __future__ import annotations

import json

import pytest
from faker import Faker

from ftaudit.cli import main
from ftaudit.data.pii import ner_available
from ftaudit.data.scan import ScanOptions, in_ner_sample, scan

pytestmark = pytest.mark.skipif(not ner_available()[0], reason="no spaCy English pipeline installed")


def _data(path, n=400):
    fake = Faker()
    Faker.seed(11)
    with open(path, "w") as fh:
        for i in range(n):
            text = fake.sentence() + (f" {fake.name()} moved to {fake.city()} last year." if i % 2 else "")
            fh.write(json.dumps({"text": text}) + "\n")
    return path


def _records_with(findings_file, etype):
    return {json.loads(line)["record"] for line in open(findings_file) if json.loads(line)["type"] == etype}


def test_sample_rates_and_intervals_hold_the_full_pass(tmp_path):
    data = _data(tmp_path / "d.jsonl")
    full = scan([data], options=ScanOptions(workers=1, ner=True), findings_path=tmp_path / "full.jsonl")
    opts = ScanOptions(workers=1, ner=True, ner_sample=100, ner_seed=7)
    sampled = scan([data], options=opts, findings_path=tmp_path / "s.jsonl")
    info = sampled.findings.detection
    sample = info.ner_sample
    assert 60 <= sample.records <= 140 and sample.coverage == pytest.approx(sample.records / 400, abs=1e-6)
    assert sample.rate == 0.25 and sample.seed == 7 and "sha256" in sample.rule and "NER read a seeded" in info.note
    rate_opts = ScanOptions(ner=True, ner_sample=100, ner_seed=7, ner_rate=sample.rate)
    chosen = {i for i in range(400) if in_ner_sample(rate_opts, 0, i)}
    assert len(chosen) == sample.records
    truth = {t: len(_records_with(tmp_path / "full.jsonl", t)) / 400 for t in ("PERSON", "LOCATION")}
    for etype in truth:
        assert _records_with(tmp_path / "s.jsonl", etype) <= chosen  # NER findings only where NER ran
        est = next(e for e in sample.estimates if e.type == etype)
        assert est.estimated_records == round(est.rate * 400)
    # A 95 % interval holds the full pass's rate for most seeds (here at least 8 of 10 each).
    covered = {t: 0 for t in truth}
    for seed in range(10):
        ev = scan([data], options=ScanOptions(workers=1, ner=True, ner_sample=100, ner_seed=seed))
        for e in ev.findings.detection.ner_sample.estimates:
            if e.type in truth:
                covered[e.type] += e.ci_low <= truth[e.type] <= e.ci_high
    assert all(n >= 8 for n in covered.values()), (covered, truth)
    assert full.findings.detection.ner_sample is None
    # patterns still run on every record
    emails = lambda ev: next((t.records for t in ev.findings.by_type if t.type == "EMAIL_ADDRESS"), 0)  # noqa: E731
    assert emails(sampled) == emails(full)

    two = scan([data], options=ScanOptions(workers=2, ner=True, ner_sample=100, ner_seed=7, shard_bytes=4096))
    dump = lambda ev: ev.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(two) == dump(sampled)
    everything = scan([data], options=ScanOptions(workers=1, ner=True, ner_sample=10_000))
    assert everything.findings.detection.ner_sample.records == 400
    assert [(t.type, t.records) for t in everything.findings.by_type] == \
        [(t.type, t.records) for t in full.findings.by_type]


@pytest.mark.parametrize("args,message", [
    (["--ner", "sample:0"], "sample:N with N a positive"),
    (["--ner", "some"], "use all, off or sample:N"),
    (["--no-ner", "--ner", "all"], "--no-ner contradicts --ner all"),
])
def test_bad_ner_modes(tmp_path, capsys, args, message):
    data = _data(tmp_path / "d.jsonl", 10)
    assert main(["data", "scan", str(data), "-o", str(tmp_path / "o"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
