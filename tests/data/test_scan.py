import json

import pytest
from faker import Faker

from ftaudit.cli import main
from ftaudit.data.policy import DataPolicy, enforce, load_policy
from ftaudit.data.report import REPORT_HTML, REPORT_JSON, REPORT_MD, SUMMARY_JSON
from ftaudit.data.scan import ScanOptions, scan, scan_for_record
from ftaudit.errors import BadInput, DataPolicyBlocked
from ftaudit.record import RunRecord

OUTPUTS = [REPORT_JSON, REPORT_MD, REPORT_HTML, SUMMARY_JSON]


def _cli(*args):
    return main(["data", "scan", *map(str, args), "--workers", "1", "--no-ner"])


def _write(path, lines):
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_findings_contract_byte_by_byte(tmp_path):
    data = _write(tmp_path / "c.jsonl", [
        '{"text": "Write to jane.doe@example.com today."}\n',
        "\n",  # a blank line still counts: record indices are 0-based line numbers
        '{"messages": [{"role": "user", "content": "hi"}, '
        '{"role": "user", "content": "IBAN DE89370400440532013000 please"}]}\n',
    ])
    findings = tmp_path / "f.jsonl"
    assert _cli(data, "-o", tmp_path / "out", "--findings", findings) == 0
    assert findings.read_bytes() == (
        b'{"record": 0, "field": "text", "start": 9, "end": 29, "type": "EMAIL_ADDRESS", "score": 1.0}\n'
        b'{"record": 2, "field": "messages[1].content", "start": 5, "end": 27, "type": "IBAN_CODE", "score": 1.0}\n'
    )


def test_no_planted_personal_data_reaches_any_output(tmp_path):
    fake = Faker(["en_US", "de_DE"])
    Faker.seed(42)
    planted, lines = [], []
    for _ in range(40):
        name, email, phone = fake.name(), fake.email(), fake.phone_number()
        iban, card = fake.iban(), fake.credit_card_number()
        planted += [name, email, phone, iban, card, *[w for w in name.split() if len(w) > 3]]
        text = (f"Hello, I am {name}. Mail {email} or call {phone}. My IBAN is {iban}, card {card}. "
                f"The woman said the doctor was kind.")
        lines.append(json.dumps({"text": text, "meta": {"author": email}}) + "\n")
    key = "AKIAIOSFODNN7EXAMPLE"
    planted.append(key)
    lines.append(json.dumps({"text": f"aws_access_key_id = {key}"}) + "\n")
    data = _write(tmp_path / "pii.jsonl", lines)
    out = tmp_path / "out"
    # Patterns only (loading spaCy costs ~10 s here); names are planted anyway: undetected, they must still not leak.
    rc = _cli(data, "-o", out, "--findings", out / "f.jsonl")
    assert rc == 5  # the secret blocks under the default policy, and the reports are still written
    report = json.loads((out / REPORT_JSON).read_text())
    assert report["findings"]["records_with_personal_data"] == 40
    assert report["findings"]["detection"]["ner_available"] is False
    assert report["findings"]["records_with_secrets"] == 1
    assert any(t["samples"] for t in report["findings"]["by_type"])
    blobs = {name: (out / name).read_text(encoding="utf-8") for name in OUTPUTS + ["f.jsonl"]}
    for value in planted:
        for name, blob in blobs.items():
            assert value not in blob, f"a planted value reached {name}"


def test_policy_blocks_with_exit_5_and_explains(tmp_path, capsys):
    data = _write(tmp_path / "s.jsonl", ['{"text": "token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}\n',
                                         '{"text": "a perfectly normal line"}\n'])
    assert _cli(data, "-o", tmp_path / "a") == 5
    err = capsys.readouterr().err.strip()
    assert err.startswith("ftaudit: error: data policy blocked training (secrets:") and "\n" not in err
    assert (tmp_path / "a" / REPORT_JSON).exists()  # the reasons can be read
    assert _cli(data, "-o", tmp_path / "b", "--policy", "off") == 0
    assert _cli(data, "-o", tmp_path / "c", "--policy", "block_on_secrets=false,max_personal_data_records=5") == 0
    assert _cli(data, "-o", tmp_path / "d", "--policy", "no_such_rule=1") == 1


def test_special_categories_block_until_reviewed(tmp_path):
    data = _write(tmp_path / "h.jsonl", ['{"text": "I was diagnosed with diabetes last year."}\n'])
    ev = scan([data], options=ScanOptions(ner=False))
    assert ev.findings.records_with_special_categories == 1
    assert ev.findings.special_categories[0].category == "health"
    with pytest.raises(DataPolicyBlocked, match="unreviewed_special_categories"):
        enforce(ev.policy)
    sheet = _write(tmp_path / "ds.yaml", ["special_category_review: {reviewed: true, reviewer: DPO}\n"])
    reviewed = scan([data], datasheet=sheet, options=ScanOptions(ner=False))
    assert reviewed.policy.status == "pass"
    strict = scan([data], datasheet=sheet, options=ScanOptions(ner=False), policy="strict")
    assert strict.policy.status == "pass"  # no personal data, datasheet given, no eval
    assert load_policy("strict").require_datasheet and load_policy(None) == DataPolicy()


def test_leakage_between_train_and_eval(tmp_path):
    fake = Faker()
    Faker.seed(3)
    train = [fake.paragraph(nb_sentences=10, variable_nb_sentences=False) for _ in range(50)]
    near = train[7].split()
    near[5] = "zebra"
    evals = [train[3], " ".join(near)] + [fake.paragraph(nb_sentences=10, variable_nb_sentences=False)
                                          for _ in range(8)]
    t = _write(tmp_path / "t.jsonl", [json.dumps({"text": x}) + "\n" for x in train])
    e = _write(tmp_path / "e.jsonl", [json.dumps({"text": x}) + "\n" for x in evals])
    ev = scan([t], eval_paths=[e], options=ScanOptions(detect=False))
    lk = ev.leakage
    assert (lk.eval_records, lk.exact_overlap, lk.near_overlap, lk.overlap_rate) == (10, 1, 1, 0.2)
    assert {(p.a_record, p.b_record) for p in lk.examples} == {(0, 3), (1, 7)}
    assert ev.duplicates.exact_duplicate_records == 0 and ev.duplicates.near_duplicate_records == 0
    assert ev.eval_record_digest.records == 10 and [f.role for f in ev.files] == ["train", "eval"]


def test_workers_give_the_same_evidence_and_it_fits_the_run_record(tmp_path):
    fake = Faker()
    Faker.seed(5)
    rows = [json.dumps({"text": fake.paragraph(), "url": fake.url()}) + "\n" for _ in range(300)]
    rows += [rows[0], "\n", json.dumps({"text": ""}) + "\n"]
    data = _write(tmp_path / "w.jsonl", rows)
    one = scan_for_record([data], options=ScanOptions(workers=1, ner=False, batch_size=32))
    two = scan_for_record([data], options=ScanOptions(workers=2, ner=False, batch_size=32))
    dump = lambda ev: ev.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(one) == dump(two)
    assert one.counts.records == 302 and one.duplicates.exact_duplicate_records == 1
    assert one.quality.empty_records == 1 and one.quality.record_examples["empty"] == [302]
    assert sum(x.records for x in one.languages) == 302
    record = RunRecord(data=one)
    record.save(tmp_path)
    assert RunRecord.load(tmp_path).data == one


@pytest.mark.parametrize("content,needle", [
    (b'{"text": "ok"}\n{"text": broken\n', "line 2"),
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "binary"),
    ('{"text": "caf\u00e9"}\n'.encode("latin-1"), "UTF-8"),
])
def test_bad_input_is_one_line_exit_1_and_nothing_written(tmp_path, capsys, content, needle):
    data = tmp_path / "bad.jsonl"
    data.write_bytes(content)
    out = tmp_path / "out"
    findings = tmp_path / "f" / "findings.jsonl"
    assert _cli(data, "-o", out, "--findings", findings) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not out.exists() and not findings.exists() and not list((tmp_path / "f").glob("*"))


def test_skip_lists_bad_lines_and_continues(tmp_path):
    data = _write(tmp_path / "s.jsonl", ['{"text": "one"}\n', '{"text": oops}\n', "[1, 2]\n", '{"text": "four"}\n'])
    ev = scan([data], options=ScanOptions(on_error="skip", detect=False))
    assert ev.counts.records == 2 and ev.counts.skipped_records == 2
    assert [(s.index, s.reason.split(":")[0]) for s in ev.skipped] == [(1, "line 2"), (2, "line 3")]
    assert ev.files[0].skipped == 2
    assert "oops" not in ev.model_dump_json()


def test_missing_field_is_bad_input(tmp_path):
    data = _write(tmp_path / "m.jsonl", ['{"prompt": "a", "completion": "b"}\n', '{"prompt": "c"}\n'])
    with pytest.raises(BadInput, match="record 1 has no field 'completion'"):
        scan([data], options=ScanOptions(fields=("prompt", "completion"), detect=False))
    skipped = scan([data], options=ScanOptions(fields=("prompt", "completion"), detect=False, on_error="skip"))
    assert skipped.counts.records == 1 and skipped.skipped[0].index == 1


def test_a_single_huge_line_streams(tmp_path):
    words = " ".join(f"word{i % 5000} and more text" for i in range(100_000))  # ~2.5 MB on one line
    data = _write(tmp_path / "big.jsonl", [json.dumps({"text": words}) + "\n", '{"text": "small"}\n'])
    ev = scan([data], options=ScanOptions(detect=False))
    assert ev.counts.records == 2 and ev.characters.max == len(words)


def test_json_flag_prints_the_report_only(tmp_path, capsys):
    data = _write(tmp_path / "j.jsonl", ['{"text": "The quick brown fox jumps over the lazy dog."}\n'])
    assert _cli(data, "-o", tmp_path / "out", "--json") == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "out" / REPORT_JSON).read_text())
    html = (tmp_path / "out" / REPORT_HTML).read_text()
    # Self-contained: inline SVG, no scripts, no external links or assets.
    assert "<svg" in html and "<script" not in html
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_error_messages_never_echo_keys_that_may_be_data(tmp_path, capsys):
    """JSON keys can be data (an e-mail address used as a key): a missing-field message counts them, never shows
    them; schema-like names are still listed."""
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"marta.kowalczyk@example.org": "hi", "Marta Kowalczyk": 1, "prompt": "x"}) + "\n")
    assert main(["data", "scan", str(path), "--fields", "text", "--no-ner", "-o", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "Kowalczyk" not in err and "@" not in err
    assert "fields present: prompt and 2 other key(s), not shown" in err
