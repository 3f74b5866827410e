"""Data-subject requests (GDPR Art. 15/17): find a person's records in other spellings and as pseudonyms, erase
them into a new dataset version, confirm, and list the runs trained on data that held the person — without the
identifiers ever reaching an output, the ledger or an error."""

from __future__ import annotations

import csv
import io
import json
import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_scan_object_storage import s3_put

from ftaudit.cli import main
from ftaudit.data import storage
from ftaudit.data.anonymize import anonymize_path, write_new_key
from ftaudit.data.scan import ScanOptions, path_sha256, scan
from ftaudit.data.storage import location
from ftaudit.data.subject import Identifier, erase, find
from ftaudit.errors import BadInput
from ftaudit.ledger.core import open_ledger
from ftaudit.record import Lineage
from reporting_records import full_record

IDS = "email: jane.doe@example.com\nphone: 020 7946 0958\nname: Jane Doe\nid: 12345678Z\n"
VALUES = ("jane", "doe", "7946 0958", "7946-0958", "12345678z", "12.345.678")  # not hex: digests may hold digits
ROWS = [
    {"text": "Hi, I am Jane Doe, mail JANE.DOE@example.com"},  # name, e-mail in capitals
    {"text": "call me on +44 20 7946 0958"},  # the phone in its international form
    {"text": "nothing here", "note": "Janet Doerr is somebody else"},
    {"text": "Doe, Jane wrote from 020-7946-0958", "meta": {"dni": "12.345.678-z"}},  # reversed name, dotted ID
    {"text": "jane.doe@example.community and +44 20 7946 09581 are other people's"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _cli(args, capsys, stdin=IDS, monkeypatch=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _no_values(*texts):
    for text in texts:
        low = text.lower()
        assert not any(v in low for v in VALUES), text


def _ledger_text(path):
    return "\n".join(r[0] for r in sqlite3.connect(path).execute("SELECT content FROM entries"))


def test_find_every_spelling_across_datasets_and_nothing_else(tmp_path, capsys, monkeypatch):
    a = _jsonl(tmp_path / "a.jsonl", ROWS)
    b = tmp_path / "b.csv"
    with b.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["prompt", "answer"])
        w.writeheader()
        w.writerow({"prompt": "who is 12345678-Z?", "answer": "a customer"})
        w.writerow({"prompt": "weather", "answer": "sunny"})
    led = tmp_path / "l.sqlite"
    code, out, err = _cli(["data", "subject", "find", str(a), str(b), "--ledger", str(led), "--key",
                           str(tmp_path / "k.pem"), "--json"], capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    hits = {d["path"].rsplit("/", 1)[-1]: {h["record"]: h["identifiers"] for h in d["records"]}
            for d in report["datasets"]}
    assert hits == {"a.jsonl": {0: [1, 3], 1: [2], 3: [2, 3, 4]}, "b.csv": {0: [4]}}
    assert report["identifiers"] == ["1 (email)", "2 (phone)", "3 (name)", "4 (id)"]
    entry = _ledger_text(led)
    assert '"event":"data_subject.find"' in entry and '"salt"' in entry
    _no_values(out, err, entry)
    code, out, err = _cli(["data", "subject", "find", str(a), "--ledger", str(led), "--key", str(tmp_path / "k.pem")],
                          capsys, monkeypatch=monkeypatch)
    assert code == 0 and "3 of 5 records: 0, 1, 3" in out
    _no_values(out, err)


def subject_data(tmp_path):
    """ROWS among 400 other records, in a JSONL file (cut into many shards) and a CSV file (read in batches)."""
    rows = [{"text": f"record {i} about the weather"} for i in range(400)]
    for i, row in zip((3, 150, 151, 399, 200), ROWS, strict=True):
        rows[i] = row
    a = _jsonl(tmp_path / "many.jsonl", rows)
    b = tmp_path / "many.csv"
    b.write_text("text\n" + "".join(f"line {i}{' Jane Doe' if i % 97 == 5 else ''}\n" for i in range(300)))
    return [a, b], [Identifier(k.strip(), v.strip()) for k, v in (line.split(":", 1) for line in IDS.splitlines())]


def test_the_same_report_for_any_number_of_workers_and_shard_size(tmp_path):
    files, ids = subject_data(tmp_path)
    dump = lambda r: r.model_dump(exclude={"request_id"})  # noqa: E731
    one = find(files, ids, workers=1)
    assert [len(d.records) for d in one.datasets] == [3, 4] and one.datasets[0].records_scanned == 400
    assert [h.record for h in one.datasets[0].records] == [3, 150, 399]
    for workers, shard in ((2, 500), (2, 1 << 22), (3, 97)):
        assert dump(find(files, ids, workers=workers, shard_bytes=shard, batch_size=64)) == dump(one)


@pytest.mark.parametrize("preserve", [False, True], ids=["tagged", "format-preserving"])
def test_pseudonyms_of_an_anonymised_copy_are_found_with_its_key(tmp_path, preserve):
    src = _jsonl(tmp_path / "src.jsonl", ROWS[:2] + [ROWS[2]])
    key_file = tmp_path / "anon.key"
    key = write_new_key(key_file)
    copy = tmp_path / "copy.jsonl"
    anonymize_path(src, copy, "pseudonymize", key=key, preserve_format=preserve, ner=False, workers=1)
    assert "7946" not in copy.read_text() and "jane.doe" not in copy.read_text().lower()
    ids = [Identifier("email", "jane.doe@example.com"), Identifier("phone", "+44 20 7946 0958")]
    with_key = find([copy], ids, key=key).datasets[0]
    assert {h.record: h.identifiers for h in with_key.records} == {0: [1], 1: [2]}
    assert all(h.pseudonymised for h in with_key.records)
    assert find([copy], ids).datasets[0].records == []  # without the key the pseudonyms say nothing


def test_erase_writes_a_new_version_and_confirm_replaces_the_old(tmp_path, capsys, monkeypatch):
    data = _jsonl(tmp_path / "d.jsonl", ROWS)
    before = data.read_text()
    led, key = str(tmp_path / "l.sqlite"), str(tmp_path / "k.pem")
    code, out, err = _cli(["data", "subject", "erase", str(data), "--ledger", led, "--key", key, "--json"], capsys,
                          monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    new = report["datasets"][0]["new_version"]
    assert data.read_text() == before, "the old version stays until confirm"
    kept = [json.loads(line) for line in open(new) if line.strip()]
    assert kept == [ROWS[2], ROWS[4]]
    assert len(open(new).read().splitlines()) == len(ROWS), "erased records leave empty lines: numbers stay"
    rid = report["request_id"]
    code, out, err = _cli(["data", "subject", "confirm", rid, "--ledger", led, "--key", key], capsys,
                          monkeypatch=monkeypatch)
    assert code == 0, err
    assert [json.loads(line) for line in data.read_text().splitlines() if line.strip()] == [ROWS[2], ROWS[4]]
    assert path_sha256(data)[0] == report["datasets"][0]["new_sha256"]
    code, out, err = _cli(["data", "subject", "confirm", rid, "--ledger", led, "--key", key], capsys,
                          monkeypatch=monkeypatch)
    assert code == 1 and "already confirmed" in err and "Traceback" not in err
    _no_values(out, err, _ledger_text(led))

    # A dataset changed after the request is not overwritten.
    other = _jsonl(tmp_path / "e.jsonl", ROWS)
    code, out, _ = _cli(["data", "subject", "erase", str(other), "--ledger", led, "--key", key, "--json"], capsys,
                        monkeypatch=monkeypatch)
    rid = json.loads(out)["request_id"]
    other.write_text(other.read_text() + json.dumps({"text": "added later"}) + "\n")
    code, _, err = _cli(["data", "subject", "confirm", rid, "--ledger", led, "--key", key], capsys,
                        monkeypatch=monkeypatch)
    assert code == 1 and "changed since the erase request" in err
    assert "added later" in other.read_text()


def test_runs_trained_on_a_version_that_held_the_person_and_their_descendants(tmp_path, capsys, monkeypatch):
    data = _jsonl(tmp_path / "train.jsonl", ROWS)
    clean = _jsonl(tmp_path / "clean.jsonl", [ROWS[2]])
    (tmp_path / "rec").mkdir()
    base = full_record(tmp_path / "rec")
    trained = base.model_copy(update={"run_id": "run-trained", "data": scan([data], options=ScanOptions(ner=False))})
    child = base.model_copy(update={"run_id": "run-child", "data": scan([clean], options=ScanOptions(ner=False)),
                                    "lineage": Lineage(lineage_id="lin-1", parent_run_id="run-trained")})
    unrelated = base.model_copy(update={"run_id": "run-other", "data": scan([clean], options=ScanOptions(ner=False))})
    led, key = tmp_path / "l.sqlite", tmp_path / "k.pem"
    with open_ledger(led, key_path=key) as ledger:
        for r in (trained, child, unrelated):
            ledger.record_run(r)
    code, out, err = _cli(["data", "subject", "find", str(data), "--ledger", str(led), "--key", str(key), "--json"],
                          capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    runs = {r["run_id"]: r["reason"] for r in json.loads(out)["runs"]}
    assert set(runs) == {"run-trained", "run-child"}
    assert "trained on" in runs["run-trained"] and "fine-tuned from the model of run run-trained" in runs["run-child"]
    code, out, err = _cli(["data", "subject", "find", str(data), "--ledger", str(led), "--key", str(key)], capsys,
                          monkeypatch=monkeypatch)
    assert "run-trained" in out and "consider retraining" in out
    _no_values(out, err)


def test_registered_searches_every_data_file_the_ledgers_runs_recorded(tmp_path, capsys, monkeypatch):
    data = _jsonl(tmp_path / "train.jsonl", ROWS)
    clean = _jsonl(tmp_path / "clean.jsonl", [ROWS[2]])
    gone = _jsonl(tmp_path / "gone.jsonl", ROWS[:2])
    (tmp_path / "rec").mkdir()
    base = full_record(tmp_path / "rec")
    runs = {"run-a": [data, clean], "run-b": [clean], "run-c": [gone]}
    led, key = tmp_path / "l.sqlite", tmp_path / "k.pem"
    with open_ledger(led, key_path=key) as ledger:
        for run_id, files in runs.items():
            ledger.record_run(base.model_copy(update={"run_id": run_id,
                                                      "data": scan(files, options=ScanOptions(ner=False))}))
    gone_sha = path_sha256(gone)[0]
    gone.unlink()
    code, out, err = _cli(["data", "subject", "find", "--registered", "--ledger", str(led), "--key", str(key),
                           "--json"], capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    assert [(d["path"], len(d["records"])) for d in report["datasets"]] == [(str(data), 3), (str(clean), 0)]
    assert report["missing"] == [{"path": str(gone), "runs": ["run-c"], "sha256": [gone_sha]}]
    assert [r["run_id"] for r in report["runs"]] == ["run-a"]
    assert '"missing":[{"path":' in _ledger_text(led).replace(" ", "")
    code, out, err = _cli(["data", "subject", "find", str(data), "--registered", "--ledger", str(led), "--key",
                           str(key)], capsys, monkeypatch=monkeypatch)
    assert code == 0 and out.count(f"  {data} (sha256") == 1, "a dataset named and registered is searched once"
    assert f"{gone}: not there now, so not searched; recorded by run-c" in out
    _no_values(out, err)  # (the ledger's run records hold words such as "does")
    code, _, err = _cli(["data", "subject", "find", "--ledger", str(led), "--key", str(key)], capsys,
                        monkeypatch=monkeypatch)
    assert code == 1 and "no datasets to search" in err and "--registered" in err


@pytest.mark.parametrize("stdin,message", [
    ("", "no identifiers given"),
    ("passport: X1234567\n", "identifier line 1: unknown kind 'passport'"),
    ("email: jane.doe@example.com\nphone: 1\n", "identifier line 2: the phone is too short"),
])
def test_bad_identifiers_one_line_never_the_value(tmp_path, capsys, monkeypatch, stdin, message):
    data = _jsonl(tmp_path / "d.jsonl", ROWS)
    code, out, err = _cli(["data", "subject", "find", str(data), "--ledger", str(tmp_path / "l.sqlite"), "--key",
                           str(tmp_path / "k.pem")], capsys, stdin=stdin, monkeypatch=monkeypatch)
    assert code == 1 and message in err and err.count("\n") == 1 and "Traceback" not in err
    _no_values(out, err)
    assert "X1234567" not in err


def test_bad_paths_and_requests(tmp_path, capsys, monkeypatch):
    led, key = str(tmp_path / "l.sqlite"), str(tmp_path / "k.pem")
    code, _, err = _cli(["data", "subject", "find", str(tmp_path / "missing.jsonl"), "--ledger", led, "--key", key],
                        capsys, monkeypatch=monkeypatch)
    assert code == 1 and "no such file" in err
    code, _, err = _cli(["data", "subject", "find", str(tmp_path / "x.jsonl"), "--identifiers",
                         str(tmp_path / "none.txt"), "--ledger", led, "--key", key], capsys, monkeypatch=monkeypatch)
    assert code == 1 and "no such identifiers file" in err
    _jsonl(tmp_path / "d.jsonl", ROWS)
    assert _cli(["data", "subject", "find", str(tmp_path / "d.jsonl"), "--ledger", led, "--key", key], capsys,
                monkeypatch=monkeypatch)[0] == 0
    code, _, err = _cli(["data", "subject", "confirm", "0123456789abcdef", "--ledger", led, "--key", key], capsys,
                        monkeypatch=monkeypatch)
    assert code == 1 and "no erase request 0123456789abcdef" in err


def _read(url: str) -> bytes:
    with location(url).open() as fh:
        return fh.read()


def test_a_request_over_datasets_in_object_storage(tmp_path, capsys, monkeypatch, s3):
    """find, erase and confirm on s3:// objects as on local files: the same records found (two workers reading
    byte ranges), each new version uploaded beside its object, which stays until confirm replaces it."""
    data = _jsonl(tmp_path / "d.jsonl", ROWS)
    table = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": [r["text"] for r in ROWS]}), table)
    urls = ["s3://dsr/v1/d.jsonl", "s3://dsr/v1/t.parquet"]
    for f, url in zip((data, table), urls, strict=True):
        s3_put(s3, url, f.read_bytes())
    led, key = str(tmp_path / "l.sqlite"), str(tmp_path / "k.pem")
    code, out, err = _cli(["data", "subject", "erase", *urls, "--workers", "2", "--shard-mb", "0.0001", "--ledger",
                           led, "--key", key, "--json"], capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    here = find([data, table], [Identifier(k.strip(), v.strip()) for k, v in
                                (line.split(":", 1) for line in IDS.splitlines())])
    for remote, local, url in zip(report["datasets"], here.datasets, urls, strict=True):
        assert remote["path"] == url and remote["sha256"] == local.sha256
        assert [h["record"] for h in remote["records"]] == [h.record for h in local.records] == [0, 1, 3]
    news = [d["new_version"] for d in report["datasets"]]
    assert news[0].startswith("s3://dsr/v1/d.erased-") and news[1].endswith(".parquet")
    assert _read(urls[0]) == data.read_bytes() and _read(urls[1]) == table.read_bytes(), "kept until confirm"
    assert [json.loads(line) for line in _read(news[0]).decode().splitlines() if line.strip()] == [ROWS[2], ROWS[4]]
    assert pq.read_table(pa.BufferReader(_read(news[1]))).column("text").to_pylist() == \
        [ROWS[2]["text"], ROWS[4]["text"]]
    code, out2, err = _cli(["data", "subject", "confirm", report["request_id"], "--ledger", led, "--key", key],
                           capsys, monkeypatch=monkeypatch)
    assert code == 0, err
    for d, url, new in zip(report["datasets"], urls, news, strict=True):
        assert path_sha256(location(url))[0] == d["new_sha256"] and not location(new).exists()
    _no_values(out, out2, err, _ledger_text(led))


def test_an_upload_that_fails_leaves_no_new_version(tmp_path, monkeypatch, s3):
    data = _jsonl(tmp_path / "d.jsonl", ROWS * 50)
    s3_put(s3, "s3://dsr-fail/d.jsonl", data.read_bytes())
    report = find(["s3://dsr-fail/d.jsonl"], [Identifier("email", "jane.doe@example.com")])

    def cut(src, dst, length):
        dst.write(src.read(100))
        raise OSError("connection reset by peer")

    monkeypatch.setattr(storage.shutil, "copyfileobj", cut)
    with pytest.raises(BadInput, match=r"cannot write it to object storage: connection reset by peer") as exc:
        erase(report)
    assert "jane" not in str(exc.value).lower()
    assert [o.name for o in location("s3://dsr-fail").rglob("*")] == ["d.jsonl"]
    assert _read("s3://dsr-fail/d.jsonl") == data.read_bytes()
