"""Sharded scans: JSONL/text files cut into byte-range shards, Parquet files into row-group shards, that the workers
read themselves give the report of one unsharded pass, for any shard size and any number of workers; a scan killed
with -9 or interrupted resumes from its checkpoint to the same report and findings file; a file that vanishes
mid-scan fails in one line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faker import Faker

from ftaudit.cli import main
from ftaudit.data import checkpoint
from ftaudit.data.loading import byte_ranges, count_records, iter_records, row_groups
from ftaudit.data.scan import ScanOptions, ShardUnavailable, scan

BIN = Path(sys.executable).parent


def _dataset(path: Path, n: int, seed: int = 3) -> Path:
    fake = Faker(["en_US", "de_DE"])
    Faker.seed(seed)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = fake.paragraph(nb_sentences=4)
        if i % 3 == 0:
            text += f" Contact {fake.name()} at {fake.email()} or {fake.phone_number()}."
        if rows and i % 17 == 0:
            text = json.loads(rows[rng.randrange(len(rows))])["text"]  # exact duplicates across shards
        rows.append(json.dumps({"text": text, "url": f"https://site{i % 7}.example/p"}))
    if n > 10:
        rows[5] = "{broken"  # an unreadable line, skipped and listed
        rows[9] = ""
    path.write_text("\n".join(rows) + "\n")
    return path


def _dump(ev) -> dict:
    return ev.model_dump(mode="json", exclude={"scanned_at"})


def test_shard_size_and_workers_do_not_change_the_report(tmp_path):
    data = _dataset(tmp_path / "d.jsonl", 400)
    base = dict(ner=False, on_error="skip")
    whole = scan([data], options=ScanOptions(workers=1, shard_bytes=1 << 30, **base), findings_path=tmp_path / "a")
    for workers, shard in ((1, 4096), (2, 4096), (2, 50_000), (3, 777)):
        sharded = scan([data], options=ScanOptions(workers=workers, shard_bytes=shard, **base),
                       findings_path=tmp_path / "b")
        assert _dump(sharded) == _dump(whole), (workers, shard)
        assert (tmp_path / "b").read_bytes() == (tmp_path / "a").read_bytes()
    assert whole.counts.skipped_records == 1 and whole.skipped[0].index == 5
    assert whole.duplicates.exact_duplicate_records > 0 and whole.findings.total > 0
    assert len(list(byte_ranges(data, 4096))) >= 20


def _parquet(tmp_path: Path, n: int, group: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in _dataset(tmp_path / "p.jsonl", n).read_text().splitlines()
            if line.startswith("{\"")]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=group)
    return path


def test_parquet_row_group_shards_do_not_change_the_report(tmp_path, capsys):
    data = _parquet(tmp_path, 400, group=23)
    whole = scan([data], options=ScanOptions(workers=1, ner=False, shard_bytes=1 << 30), findings_path=tmp_path / "a")
    for workers, shard in ((1, 1), (2, 3000), (2, 20_000)):
        sharded = scan([data], options=ScanOptions(workers=workers, ner=False, shard_bytes=shard),
                       findings_path=tmp_path / "b")
        assert _dump(sharded) == _dump(whole), (workers, shard)
        assert (tmp_path / "b").read_bytes() == (tmp_path / "a").read_bytes()
    assert whole.counts.records == 398 and whole.findings.total > 0 and whole.duplicates.exact_duplicate_records
    spans = list(row_groups(data, 3000))
    assert len(spans) > 3 and spans[0].first == 0 and spans[-1].stop == 18  # 398 rows in groups of 23
    assert all(a.stop == b.first and b.first_row == a.first_row + 23 * (a.stop - a.first)
               for a, b in zip(spans, spans[1:], strict=False))
    indexes = [r.index for span in spans for r in iter_records(data, span=span)]
    assert indexes == list(range(398)) == [r.index for r in iter_records(data)] and count_records(data) == 398
    code = main(["data", "scan", str(data), "--no-ner", "--fields", "prompt", "--shard-mb", "0.001",
                 "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "has no field 'prompt' (fields present: text, url)" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "data_report.json").exists()


def test_byte_ranges_cover_every_line_once(tmp_path):
    p = tmp_path / "lines.jsonl"
    rng = random.Random(0)
    p.write_text("".join("\n" if rng.random() < 0.05 else json.dumps({"t": "x" * rng.randint(0, 3000)}) + "\n"
                         for _ in range(500)) + json.dumps({"t": "no newline at the end"}))
    whole = [(r.index, r.data) for r in iter_records(p)]
    for size in (1, 100, 4096, 10**9):
        shards = list(byte_ranges(p, size))
        assert [(r.index, r.data) for s in shards for r in iter_records(p, span=s)] == whole
        assert shards[0].start == 0 and shards[-1].end == p.stat().st_size
        assert all(a.end == b.start for a, b in zip(shards, shards[1:], strict=False))


def test_interrupted_scan_resumes_to_the_same_report(tmp_path, monkeypatch):
    data = _dataset(tmp_path / "d.jsonl", 400)
    opts = ScanOptions(workers=1, ner=False, on_error="skip", shard_bytes=4096)
    whole = scan([data], options=opts, findings_path=tmp_path / "whole.jsonl")
    ckpt = tmp_path / "out" / checkpoint.FILENAME
    from ftaudit.data import scan_run as scan_mod

    folded = {"n": 0}
    original = scan_mod.Progress.advance

    def stop_after_ten(self, *a):
        original(self, *a)
        folded["n"] += 1
        if folded["n"] == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod.Progress, "advance", stop_after_ten)
    with pytest.raises(KeyboardInterrupt):
        scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, checkpoint_seconds=0)
    monkeypatch.setattr(scan_mod.Progress, "advance", original)
    assert ckpt.is_file() and not (tmp_path / "f.jsonl").exists()
    resumed = scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, resume=True)
    assert _dump(resumed) == _dump(whole)
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert not ckpt.exists() and not list(tmp_path.glob(".f.jsonl.*.tmp"))
    with pytest.raises(Exception, match="nothing to resume"):
        scan([data], options=opts, checkpoint_path=ckpt, resume=True)


def test_a_checkpoint_writes_each_index_array_once_and_resumes_from_them(tmp_path, monkeypatch):
    """With the spill threshold and the signature block made small, the index's runs and full blocks go to files
    beside the pickle: every save writes only the arrays made since the one before, a save's unreferenced files
    are gone after it, and a scan resumed from the pickle and its files gives the uninterrupted report."""
    from ftaudit.data import quality

    monkeypatch.setattr(checkpoint, "SPILL_BYTES", 256)
    monkeypatch.setattr(quality.NearDuplicateIndex, "_BLOCK", 16)
    data = _dataset(tmp_path / "d.jsonl", 1000)
    opts = ScanOptions(workers=1, ner=False, on_error="skip", shard_bytes=8192)
    whole = scan([data], options=opts, findings_path=tmp_path / "whole.jsonl")
    ckpt = tmp_path / "out" / checkpoint.FILENAME
    written, held = [], []  # bytes of each array file written; bytes of the files a checkpoint refers to, per save
    save_array, save = checkpoint.np.save, checkpoint.save

    def counted_array(fh, arr, **kw):
        written.append(arr.nbytes)
        save_array(fh, arr, **kw)

    def counted_save(path, state):
        save(path, state)
        named = set()

        class Names(checkpoint._Unpickler):
            def persistent_load(self, name):
                named.add(name)

        with open(path, "rb") as fh:
            Names(fh, None).load()
        assert {f.stem for f in checkpoint.arrays_dir(path).glob("*.npy")} == named  # nothing stale, nothing lost
        held.append(sum(f.stat().st_size - 128 for f in checkpoint.arrays_dir(path).glob("*.npy")))  # less headers
        if len(held) == 20:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.np, "save", counted_array)
    monkeypatch.setattr(checkpoint, "save", counted_save)
    with pytest.raises(KeyboardInterrupt):
        scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, checkpoint_seconds=0)
    assert held[-1] > 20_000
    # What the saves wrote, against pickling the same arrays whole at every save.
    assert sum(written) < sum(held) / 4
    monkeypatch.setattr(checkpoint, "save", save)
    monkeypatch.setattr(checkpoint.np, "save", save_array)
    resumed = scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, resume=True)
    assert _dump(resumed) == _dump(whole)
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert not ckpt.exists() and not checkpoint.arrays_dir(ckpt).exists()


def test_kill_9_mid_scan_then_resume_gives_the_uninterrupted_report(tmp_path):
    data = _dataset(tmp_path / "d.jsonl", 10000)
    args = [str(BIN / "ftaudit"), "data", "scan", str(data), "--no-ner", "--on-error", "skip", "--workers", "2",
            "--shard-mb", "0.02", "--checkpoint-every", "0", "--policy", "off", "--json"]
    ref = subprocess.run(args + ["-o", str(tmp_path / "ref"), "--findings", str(tmp_path / "ref.jsonl")],
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    run = args + ["-o", str(out), "--findings", str(tmp_path / "f.jsonl")]
    proc = subprocess.Popen(run, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not (out / checkpoint.FILENAME).is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more shards folded, and likely a checkpoint being written
    assert proc.poll() is None, "the scan finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / checkpoint.FILENAME).is_file() and not (tmp_path / "f.jsonl").exists()
    resumed = subprocess.run(run + ["--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a, b = json.loads(ref.stdout), json.loads(resumed.stdout)
    a.pop("scanned_at"), b.pop("scanned_at")
    assert a == b
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
    assert not (out / checkpoint.FILENAME).exists()


def test_a_file_that_vanishes_mid_scan_fails_in_one_line_and_can_be_resumed(tmp_path, capsys, monkeypatch):
    data = _dataset(tmp_path / "d.jsonl", 400)
    other = _dataset(tmp_path / "e.jsonl", 400, seed=4)
    opts = ScanOptions(workers=1, ner=False, on_error="skip", shard_bytes=4096)
    ckpt = tmp_path / "out" / checkpoint.FILENAME
    from ftaudit.data import scan_run as scan_mod

    original = scan_mod.Progress.advance
    moved = tmp_path / "away.jsonl"

    def vanish(self, records, nbytes, source):
        original(self, records, nbytes, source)
        if source.endswith("d.jsonl") and not moved.exists():
            other.rename(moved)  # the second file is gone before its first shard

    monkeypatch.setattr(scan_mod.Progress, "advance", vanish)
    with pytest.raises(ShardUnavailable, match="disappeared during the scan"):
        scan([data, other], options=opts, checkpoint_path=ckpt, checkpoint_seconds=0)
    monkeypatch.setattr(scan_mod.Progress, "advance", original)
    assert ckpt.is_file()
    moved.rename(other)
    whole = scan([data, other], options=opts)
    resumed = scan([data, other], options=opts, checkpoint_path=ckpt, resume=True)
    assert _dump(resumed) == _dump(whole)

    # Through the CLI: one line, exit 1, no report; a changed file is refused on resume.
    assert main(["data", "scan", str(data), "--no-ner", "--resume", "-o", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "nothing to resume" in err and err.count("\n") == 1
    assert main(["data", "scan", str(data), "--shard-mb", "0", "-o", str(tmp_path / "x")]) == 1
    assert "--shard-mb must be positive" in capsys.readouterr().err


def test_a_bad_encoding_in_a_later_shard_names_its_file_wide_line(tmp_path, capsys):
    data = tmp_path / "mixed.jsonl"
    with open(data, "wb") as fh:
        for i in range(3000):
            fh.write((json.dumps({"text": f"line {i} " + "x" * 50}) + "\n").encode())
        fh.write('{"text": "café"}\n'.encode("latin-1"))  # one latin-1 line at the end, in the last shard
    out = tmp_path / "out"
    assert main(["data", "scan", str(data), "--no-ner", "--workers", "2", "--shard-mb", "0.01", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 3001 is not valid UTF-8" in err and err.count("\n") == 1
    assert not (out / "data_report.json").exists() and not (out / checkpoint.FILENAME).exists()
