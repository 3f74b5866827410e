"""`ftaudit data scan s3://…` against a local S3 server (moto's): JSONL shards read by byte range with ranged GETs,
CSV and Parquet streamed, a prefix expanded to its data files; the report is the one a scan of the same bytes on
local disk gives. Missing objects, unknown schemes and an unreachable store are one line each, nothing written."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from faker import Faker

from ftaudit.cli import main
from ftaudit.data.loading import iter_records
from ftaudit.data.scan import ScanOptions, scan
from ftaudit.errors import BAD_INPUT


def s3_put(env: dict[str, str], url: str, body: bytes) -> None:
    """Upload `body` to s3://bucket/key on the server `env` points at, making the bucket if needed."""
    import boto3

    bucket, key = url.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=body)


def corpus(tmp_path):
    """A JSONL file with e-mail addresses, IBANs, duplicates and URLs; a CSV and a Parquet table; local copies."""
    fake = Faker()
    Faker.seed(5)
    rows = [{"text": fake.paragraph() + (f" Write to {fake.email()} or pay DE89 3704 0044 0532 0130 00." if i % 3 == 0
                                         else ""), "url": fake.url()} for i in range(400)]
    rows += rows[:7]
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (local / "b.csv").write_text("text\n" + "".join(f'"{fake.sentence()} Call +44 20 7946 0{i:03d}."\n'
                                                    for i in range(150)))
    pq.write_table(pa.table({"text": [r["text"] for r in rows[:120]], "url": [r["url"] for r in rows[:120]]}),
                   local / "c.parquet", row_group_size=50)
    return local


def _upload(s3_env, local, prefix: str) -> None:
    for f in sorted(local.iterdir()):
        s3_put(s3_env, f"{prefix}/{f.name}", f.read_bytes())


def _same_report(remote, local, prefix: str, local_dir) -> None:
    """Equal but for where the files are (the samples name their source)."""
    dump = lambda e: json.dumps(e.model_dump(mode="json", exclude={"scanned_at", "files"}))  # noqa: E731
    assert dump(remote).replace(prefix, str(local_dir)) == dump(local)
    assert [(f.sha256, f.bytes, f.records, f.format) for f in remote.files] == \
        [(f.sha256, f.bytes, f.records, f.format) for f in local.files]


def test_a_scan_of_objects_in_s3_is_the_scan_of_the_same_bytes_on_disk(tmp_path, s3):
    local = corpus(tmp_path)
    _upload(s3, local, "s3://corpus-one/v1")
    opts = ScanOptions(workers=2, ner=False, shard_bytes=10_000)  # a dozen ranged reads of the JSONL object
    names = ["a.jsonl", "b.csv", "c.parquet"]
    on_s3 = scan([f"s3://corpus-one/v1/{n}" for n in names], options=opts, findings_path=tmp_path / "s3.jsonl")
    on_disk = scan([local / n for n in names], options=opts, findings_path=tmp_path / "disk.jsonl")
    _same_report(on_s3, on_disk, "s3://corpus-one/v1", local)
    assert [f.path for f in on_s3.files] == [f"s3://corpus-one/v1/{n}" for n in names]
    assert on_disk.findings.total > 100 and on_disk.duplicates.exact_duplicate_records >= 7
    assert on_disk.counts.records == 407 + 150 + 120
    disk_lines = (tmp_path / "disk.jsonl").read_text().splitlines()
    s3_lines = (tmp_path / "s3.jsonl").read_text().replace("s3://corpus-one/v1/", str(local) + "/").splitlines()
    assert s3_lines == disk_lines and len(disk_lines) == on_disk.findings.total


def test_a_prefix_is_its_data_files_in_name_order(tmp_path, s3, capsys):
    local = corpus(tmp_path)
    _upload(s3, local, "s3://corpus-two/2026/12")
    s3_put(s3, "s3://corpus-two/2026/12/README", b"not data")  # no data suffix: not scanned
    opts = ScanOptions(workers=1, ner=False)
    _same_report(scan(["s3://corpus-two/2026/"], options=opts), scan(sorted(local.iterdir()), options=opts),
                 "s3://corpus-two/2026/12", local)
    code = main(["data", "scan", "s3://corpus-two/2026/12/", "--no-ner", "--policy", "off", "--json",
                 "--output-dir", str(tmp_path / "o")])
    report = json.loads((tmp_path / "o" / "data_report.json").read_text())
    assert code == 0 and [f["path"] for f in report["files"]] == [
        f"s3://corpus-two/2026/12/{n}" for n in ("a.jsonl", "b.csv", "c.parquet")]
    capsys.readouterr()


@pytest.mark.parametrize(("url", "says"), [
    ("s3://corpus-three/nothing-here.jsonl", "s3://corpus-three/nothing-here.jsonl: no such file or directory"),
    ("s3://corpus-three/empty/", "no data files under this prefix"),
    ("ftp://host/data.jsonl", "unsupported storage scheme ftp://"),
])
def test_what_is_not_there_is_one_line_and_nothing_is_written(tmp_path, s3, capsys, url, says):
    s3_put(s3, "s3://corpus-three/empty/notes.bin", b"\x00")
    code = main(["data", "scan", url, "--no-ner", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == BAD_INPUT and says in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_unreachable_store_is_one_line(tmp_path, s3, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    code = main(["data", "scan", "s3://corpus-four/a.jsonl", "--no-ner", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == BAD_INPUT and len(err.strip().splitlines()) == 1
    assert "cannot read it from object storage" in err and "AWS_ENDPOINT_URL" in err
    assert not (tmp_path / "o" / "data_report.json").exists()


def test_a_saved_dataset_in_s3_is_read_from_its_arrow_files_as_on_disk(tmp_path, s3):
    """A `save_to_disk` DatasetDict (two splits, one in two Arrow shards, a shuffled selection) uploaded as it is:
    the rows are those `datasets.load_from_disk` gives, and the remote scan equals the local one."""
    import datasets

    rows = [{"text": r["text"], "n": i} for i, r in enumerate(json.loads(line) for line in
                                                             (corpus(tmp_path) / "a.jsonl").read_text().splitlines())]
    whole = datasets.Dataset.from_list(rows)
    saved = tmp_path / "saved"
    datasets.DatasetDict(train=whole.select(range(300)).shuffle(seed=3),
                         test=whole.select(range(300, len(rows)))).save_to_disk(str(saved), num_shards={"train": 2,
                                                                                                       "test": 1})
    assert len(list((saved / "train").glob("*.arrow"))) == 2
    for f in sorted(saved.rglob("*")):
        if f.is_file():
            s3_put(s3, f"s3://corpus-five/saved/{f.relative_to(saved)}", f.read_bytes())
    loaded = datasets.load_from_disk(str(saved))
    want = [(f"{saved}[{split}]", i, dict(row)) for split in ("train", "test") for i, row in enumerate(loaded[split])]
    got = [(r.source, r.index, r.data) for r in iter_records(saved)]
    assert got == want and got[0][2]["n"] != 0
    opts = ScanOptions(workers=2, ner=False)
    on_s3, on_disk = scan(["s3://corpus-five/saved"], options=opts), scan([saved], options=opts)
    _same_report(on_s3, on_disk, "s3://corpus-five/saved", saved)
    assert on_disk.counts.records == len(rows) and on_disk.findings.total > 100
