"""Anonymisation: every strategy, no original value survives, consistent pseudonyms, format preservation,
atomic output, untouched input, key never written, CLI exit codes."""

from __future__ import annotations

import json
import re

import pytest

from ftaudit.cli import main
from ftaudit.data.anonymize import anonymize_path, anonymize_text, stand_in
from ftaudit.data.pii import detect_text
from ftaudit.errors import BadInput

KEY = bytes(range(32))
ORIGINALS = ["jane.doe@example.org", "+44 20 7946 0958", "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00",
             "203.0.113.77", "123-45-6780", "ghp_" + "a1B2c3D4" * 4 + "e5F6"]
ROWS = [
    {"text": f"Mail {ORIGINALS[0]} or call {ORIGINALS[1]}.", "id": 1},
    {"messages": [{"role": "user", "content": f"card {ORIGINALS[2]}, IBAN {ORIGINALS[3]}"},
                  {"role": "assistant", "content": f"ip {ORIGINALS[4]}, SSN {ORIGINALS[5]}, token {ORIGINALS[6]}"}]},
    {"text": f"again {ORIGINALS[0]}"},
]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("strategy", ["redact", "mask", "hash", "pseudonymize"])
@pytest.mark.parametrize("preserve", [False, True])
def test_no_original_value_survives(tmp_path, strategy, preserve):
    src = _write(tmp_path / "in.jsonl", ROWS)
    before = src.read_bytes()
    out = tmp_path / "out.jsonl"
    summary = anonymize_path(src, out, strategy, key=KEY, preserve_format=preserve, ner=False, workers=1)
    text = out.read_text()
    for value in ORIGINALS:
        assert value not in text and value.replace(" ", "") not in text.replace(" ", "")
    assert src.read_bytes() == before
    assert summary.replacements_by_type["EMAIL_ADDRESS"] == 2 and summary.replacements_total == 8
    assert summary.records_read == summary.records_written == 3 and summary.records_changed == 3
    assert KEY.hex() not in text and KEY.hex() not in summary.model_dump_json()
    assert [json.loads(line)["text"][:4] for line in text.splitlines() if "text" in line] == ["Mail", "agai"]


def test_pseudonyms_consistent_across_records_and_files_and_distinct_per_value(tmp_path):
    _write(tmp_path / "a.jsonl", [{"text": "x JANE.DOE@example.org y"}, {"text": "jane.doe@example.org"}])
    _write(tmp_path / "b.jsonl", [{"text": "from jane.doe@example.org and bob@example.net"}])
    for name in ("a", "b"):
        anonymize_path(tmp_path / f"{name}.jsonl", tmp_path / f"{name}.out.jsonl", "pseudonymize", key=KEY, ner=False)
    tokens = re.findall(r"<EMAIL_ADDRESS_[0-9a-f]{8}>", (tmp_path / "a.out.jsonl").read_text()
                        + (tmp_path / "b.out.jsonl").read_text())
    assert len(tokens) == 4 and len(set(tokens[:3])) == 1 and tokens[3] != tokens[0]
    other_key = stand_in("jane.doe@example.org", "EMAIL_ADDRESS", "pseudonymize", key=b"k" * 32,
                         preserve_format=False)
    assert other_key != tokens[0]


def test_format_preservation():
    text = "Mail jane.doe@example.org, call +44 20 7946 0958, IBAN DE89 3704 0044 0532 0130 00 from 203.0.113.77"
    spans = detect_text(text, ner=False, special=False)
    new, changes = anonymize_text(text, spans, "pseudonymize", key=KEY, preserve_format=True)
    assert [c.type for c in changes] == ["EMAIL_ADDRESS", "PHONE_NUMBER", "IBAN_CODE", "IP_ADDRESS"]
    email = re.search(r"Mail (\S+),", new).group(1)
    assert re.fullmatch(r"[a-z]{4}\.[a-z]{3}@example\.com", email)
    phone = re.search(r"call (\S+ \S+ \S+ \S+),", new).group(1)
    assert re.fullmatch(r"\+\d\d \d\d \d{4} \d{4}", phone) and phone != "+44 20 7946 0958"
    assert re.search(r"IBAN DE\d\d \d{4} \d{4} \d{4} \d{4} \d\d", new)
    assert re.search(r"from 10\.\d+\.\d+\.\d+$", new)
    assert stand_in("4111 1111 1111 1111", "CREDIT_CARD", "mask", key=None, preserve_format=True) == \
        "**** **** **** ****"


def test_hash_is_keyed_when_a_key_is_given():
    plain = stand_in("a@b.org", "EMAIL_ADDRESS", "hash", key=None, preserve_format=False)
    keyed = stand_in("a@b.org", "EMAIL_ADDRESS", "hash", key=KEY, preserve_format=False)
    assert plain != keyed and plain.startswith("<EMAIL_ADDRESS:")


def test_formats_csv_parquet_and_types_filter(tmp_path):
    (tmp_path / "in.csv").write_text("text,n\nmail jane.doe@example.org ip 203.0.113.77,1\n")
    anonymize_path(tmp_path / "in.csv", tmp_path / "out.csv", "redact", types=["EMAIL_ADDRESS"], ner=False)
    assert (tmp_path / "out.csv").read_text().splitlines() == ["text,n", "mail <EMAIL_ADDRESS> ip 203.0.113.77,1"]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"text": "a@example.org", "n": 1}]), tmp_path / "in.parquet")
    anonymize_path(tmp_path / "in.parquet", tmp_path / "out.parquet", "redact", ner=False)
    assert pq.read_table(tmp_path / "out.parquet").to_pylist() == [{"text": "<EMAIL_ADDRESS>", "n": 1}]


def test_bad_record_stops_with_nothing_half_written(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"a{i}@example.org"}) + "\n" for i in range(600)) + "{bad\n")
    out = tmp_path / "out.jsonl"
    with pytest.raises(BadInput, match="line 601"):
        anonymize_path(src, out, "redact", ner=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]
    s = anonymize_path(src, out, "redact", ner=False, on_error="skip", workers=1)
    assert s.records_skipped == 1 and s.records_written == 600


@pytest.mark.parametrize("dst,message", [("in.jsonl", "overwrite the input"), ("out.csv", "input's format"),
                                        ("afile/out.jsonl", "cannot write")])
def test_bad_outputs(tmp_path, dst, message):
    src = _write(tmp_path / "in.jsonl", ROWS[:1])
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInput, match=message):
        anonymize_path(src, tmp_path / dst, "redact", ner=False)


def test_cli_new_key_summary_and_exit_codes(tmp_path, capsys):
    src = _write(tmp_path / "in.jsonl", ROWS)
    key_file, out = tmp_path / "k.hex", tmp_path / "out.jsonl"
    args = ["data", "anonymize", str(src), str(out), "--strategy", "pseudonymize", "--preserve-format",
            "--key-file", str(key_file), "--no-ner", "--workers", "1"]
    assert main(args + ["--new-key"]) == 0
    key = key_file.read_text().strip()
    summary = json.loads((tmp_path / "out.jsonl.changes.json").read_text())
    assert summary["key_source"] == "key file" and summary["replacements_by_type"]["EMAIL_ADDRESS"] == 2
    first = out.read_text()
    assert key not in first and key not in json.dumps(summary)
    assert main(args) == 0 and out.read_text() == first  # same key file → same pseudonyms
    assert main(args + ["--new-key"]) == 1  # refuses to overwrite the key
    assert main(["data", "anonymize", str(tmp_path / "missing.jsonl"), str(out)]) == 1
    assert main(["data", "anonymize", str(src), str(out), "--types", "NOT_A_TYPE"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("ftaudit: error:") == 3


def test_every_occurrence_of_a_detected_value_is_replaced_dataset_wide(tmp_path):
    """A value detected in one record is replaced wherever it occurs, in any field, even where the detector missed
    it (here the phone number scores above min_score only next to 'call me'; 'invoice' and 'ref' lower it)."""
    src = tmp_path / "in.jsonl"
    rows = [{"prompt": "call me on 020 7946 0958 please", "completion": "ok"},
            {"prompt": "invoice 020 7946 0958", "completion": "ref 020 7946 0958 batch"},
            {"prompt": "nothing here", "completion": "still nothing"}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for strategy in ("redact", "pseudonymize"):
        out = tmp_path / f"out-{strategy}.jsonl"
        summary = anonymize_path(src, out, strategy, key=KEY, ner=False, workers=1, min_score=0.5)
        assert "7946" not in out.read_text()
        assert summary.replacements_found_by_detection == 1 and summary.replacements_found_by_propagation == 2
        assert summary.propagated_by_type == {"PHONE_NUMBER": 2} and summary.records_changed == 2
        assert summary.replacements_total == 3
    pseudo = [json.loads(line) for line in (tmp_path / "out-pseudonymize.jsonl").read_text().splitlines()]
    stand_ins = {pseudo[0]["prompt"].split()[3], pseudo[1]["prompt"].split()[1]}
    assert len(stand_ins) == 1  # the same stand-in for the same value, detected or propagated


def test_names_ner_found_only_in_part_are_replaced_in_full(tmp_path):
    from ftaudit.data.pii import ner_available

    if not ner_available()[0]:
        pytest.skip("spaCy's NER model is not installed (the `ner` extra)")
    src = tmp_path / "names.jsonl"
    texts = ["Please call Anna Schmidt tomorrow.", "The Anna Schmidt Foundation supports schools.",
             ">> Anna Schmidt", "Anna Schmidt Anna Schmidt"]
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out = tmp_path / "names.out.jsonl"
    summary = anonymize_path(src, out, "redact", ner=True, workers=1)
    text = out.read_text()
    assert "Anna" not in text and "Schmidt" not in text
    assert summary.replacements_found_by_propagation >= 2
