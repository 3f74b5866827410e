"""`ftaudit data scan --engine ray` on a local Ray cluster that the test starts (a head with 2 CPUs: two worker
processes): the same report and findings file as the local engine, the same data-subject search, task errors as
one line, an unreachable cluster refused at once."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import ray
from test_data_subject import IDS, subject_data
from test_scan_object_storage import corpus, s3_put

from ftaudit.cli import main
from ftaudit.data.scan import ScanOptions, scan
from ftaudit.data.subject import find
from ftaudit.errors import BadInput

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(s3_server):
    """A Ray head on 127.0.0.1 with 2 CPUs (token authentication off: a throwaway local cluster), its nodes given
    the local S3 server's credentials and endpoint, as a cloud cluster's nodes have theirs."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="/tmp/rt")  # Ray's socket paths must stay short
    env = {**os.environ, **s3_server, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(BIN / "ray"), "start", "--head", "--num-cpus", "2", "--port", str(port), "--node-ip-address",
                    "127.0.0.1", "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", temp],
                   check=True, capture_output=True, env=env, timeout=180)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


def _data(tmp_path: Path) -> tuple[Path, Path, Path]:
    """The object-storage tests' corpus on disk: its JSONL and CSV files, and 40 of the JSONL's lines as eval."""
    local = corpus(tmp_path)
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join((local / "a.jsonl").read_text().splitlines(True)[100:140]))
    return local / "a.jsonl", local / "b.csv", ev


def test_ray_engine_gives_the_local_report(tmp_path, cluster):
    train, table, ev = _data(tmp_path)
    opts = ScanOptions(workers=2, ner=False, shard_bytes=20_000)
    local = scan([train, table], eval_paths=[ev], options=opts, findings_path=tmp_path / "local.jsonl")
    on_ray = scan([train, table], eval_paths=[ev], options=opts, findings_path=tmp_path / "ray.jsonl", engine="ray",
                  ray_address=cluster)
    dump = lambda e: e.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(on_ray) == dump(local)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    assert local.findings.total > 0 and local.leakage.exact_overlap == 40 and local.duplicates.exact_duplicate_records
    assert ray.cluster_resources()["CPU"] == 2


def test_a_task_error_is_one_line(tmp_path, cluster):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n' * 50 + '{"text": broken\n')
    with pytest.raises(Exception) as info:
        scan([bad], options=ScanOptions(ner=False, shard_bytes=100), engine="ray", ray_address=cluster)
    assert type(info.value).__name__ == "BadInput" and str(info.value).count("\n") == 0
    assert "line 51: invalid JSON" in str(info.value)


def test_an_unreachable_cluster_is_refused_at_once(tmp_path):
    train, _, _ = _data(tmp_path)
    port = _free_port()
    for args, message in ((["--engine", "ray", "--address", f"127.0.0.1:{port}"], "cannot reach the Ray cluster"),
                          (["--address", f"127.0.0.1:{port}"], "use it with --engine ray"),
                          (["--engine", "ray", "--address", "nonsense"], "give HOST:PORT")):
        done = subprocess.run([str(BIN / "ftaudit"), "data", "scan", str(train), "--no-ner", "-o",
                               str(tmp_path / "o"), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "o" / "data_report.json").exists()


def test_duplicates_and_leaks_found_across_the_cluster_are_the_drivers(tmp_path, cluster, capsys):
    """--lsh cluster: band keys grouped by Ray tasks, outcomes replayed in the driver; the report and the findings
    file equal the local engine's streaming index, near duplicates and near leaks included."""
    train, table, ev = _data(tmp_path)
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    edited = tmp_path / "edited.jsonl"  # one word changed in 80 of the texts: near, not exact, duplicates
    edited.write_text("".join(json.dumps({**r, "text": r["text"].replace(" ", " very ", 1)}) + "\n"
                              for r in rows[200:280]))
    near_eval = tmp_path / "near_eval.jsonl"
    near_eval.write_text("".join(json.dumps({"text": r["text"].replace(" ", " truly ", 1)}) + "\n"
                                 for r in rows[300:320]))
    opts = ScanOptions(workers=2, ner=False, shard_bytes=15_000)
    args = dict(eval_paths=[ev, near_eval], options=opts)
    local = scan([train, table, edited], findings_path=tmp_path / "local.jsonl", **args)
    on_ray = scan([train, table, edited], findings_path=tmp_path / "ray.jsonl", engine="ray", ray_address=cluster,
                  lsh="cluster", **args)
    dump = lambda e: e.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(on_ray) == dump(local)
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "local.jsonl").read_bytes()
    d, leaks = local.duplicates, local.leakage
    assert d.near_duplicate_records >= 40 and d.exact_duplicate_records >= 7
    assert leaks.exact_overlap == 40 and leaks.near_overlap >= 8
    with pytest.raises(BadInput, match="--resume cannot continue a scan with --lsh cluster"):
        scan([train], options=opts, engine="ray", ray_address=cluster, lsh="cluster", resume=True,
             checkpoint_path=tmp_path / "c")
    with pytest.raises(BadInput, match="'cluster' with --engine ray"):
        scan([train], options=opts, lsh="cluster")
    code = main(["data", "scan", str(train), str(table), str(edited), "--eval", str(ev), "--eval", str(near_eval),
                 "--no-ner", "--policy", "off", "--engine", "ray", "--address", cluster, "--lsh", "cluster",
                 "--shard-mb", "0.015", "--output-dir", str(tmp_path / "o")])
    report = json.loads((tmp_path / "o" / "data_report.json").read_text())
    assert code == 0 and report["duplicates"] == dump(local)["duplicates"]
    assert report["leakage"] == dump(local)["leakage"]
    capsys.readouterr()


def test_ray_tasks_read_their_shards_from_object_storage(tmp_path, cluster, s3):
    local = corpus(tmp_path)
    for f in sorted(local.iterdir()):
        s3_put(s3, f"s3://ray-corpus/v1/{f.name}", f.read_bytes())
    opts = ScanOptions(workers=2, ner=False, shard_bytes=10_000)
    on_ray = scan(["s3://ray-corpus/v1/"], eval_paths=["s3://ray-corpus/v1/a.jsonl"], options=opts, engine="ray",
                  ray_address=cluster, findings_path=tmp_path / "ray.jsonl")
    here = scan(["s3://ray-corpus/v1/"], eval_paths=["s3://ray-corpus/v1/a.jsonl"], options=opts,
                findings_path=tmp_path / "here.jsonl")
    dump = lambda e: e.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(on_ray) == dump(here) and here.counts.records == 677 and here.leakage.exact_overlap > 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "here.jsonl").read_bytes()


def test_a_data_subject_search_on_ray_finds_what_the_local_engine_finds(tmp_path, cluster, capsys, monkeypatch):
    files, ids = subject_data(tmp_path)
    dump = lambda r: r.model_dump(exclude={"request_id"})  # noqa: E731
    local = find(files, ids, workers=2, shard_bytes=700)
    assert dump(find(files, ids, engine="ray", ray_address=cluster, shard_bytes=700)) == dump(local)
    assert local.records_found == 7
    monkeypatch.setattr("sys.stdin", io.StringIO(IDS))
    code = main(["data", "subject", "find", *map(str, files), "--engine", "ray", "--address", cluster,
                 "--shard-mb", "0.001", "--ledger", str(tmp_path / "l.sqlite"), "--key", str(tmp_path / "k.pem")])
    out = capsys.readouterr().out
    assert code == 0 and "3 of 400 records: 3, 150, 399" in out and "4 of 300 records" in out


def test_a_data_subject_search_on_ray_reads_object_storage(tmp_path, cluster, s3):
    files, ids = subject_data(tmp_path)
    urls = [f"s3://ray-subject/v1/{f.name}" for f in files]
    for f, url in zip(files, urls, strict=True):
        s3_put(s3, url, f.read_bytes())
    dump = lambda r: [d.model_dump(exclude={"path"}) for d in r.datasets]  # noqa: E731
    on_ray = find(urls, ids, engine="ray", ray_address=cluster, shard_bytes=700)
    assert [d.path for d in on_ray.datasets] == urls
    assert dump(on_ray) == dump(find(files, ids, workers=1)) and on_ray.records_found == 7


def test_a_worker_killed_mid_scan_is_retried_and_the_report_is_whole(tmp_path, cluster):
    """kill -9 of the Ray worker process running a scan task: Ray runs the task again, and the report equals the
    local engine's (no shard lost, none counted twice)."""
    import threading
    import time

    import psutil

    train, _, _ = _data(tmp_path)
    big = tmp_path / "big.jsonl"
    big.write_text(train.read_text() * 9)
    opts = ScanOptions(workers=2, ner=False, shard_bytes=30_000)
    killed: list[int] = []

    def kill_one_task_worker():
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for proc in psutil.process_iter(["cmdline"]):
                if any("ray::MapBatches(_outcome)" in part for part in proc.info["cmdline"] or ()):
                    proc.kill()
                    killed.append(proc.pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_task_worker)
    killer.start()
    on_ray = scan([big], options=opts, engine="ray", ray_address=cluster)
    killer.join()
    local = scan([big], options=opts)
    assert killed, "no Ray task worker was seen running"
    dump = lambda e: e.model_dump(mode="json", exclude={"scanned_at"})  # noqa: E731
    assert dump(on_ray) == dump(local) and local.counts.records == 3663


def test_a_ray_scan_interrupted_in_its_second_window_resumes_to_the_local_report(tmp_path, cluster, monkeypatch):
    """Ctrl-C in the driver while Ray Data streams results: the checkpoint holds what was folded; --resume on the
    cluster skips those jobs (past the first window of 32 jobs per CPU) and the report and findings file equal an
    uninterrupted local scan's."""
    from test_scan_shards import _dataset, _dump

    from ftaudit.data import checkpoint, ray_engine
    from ftaudit.data import scan_run as scan_mod

    data = _dataset(tmp_path / "d.jsonl", 400)
    opts = ScanOptions(workers=2, ner=False, on_error="skip", shard_bytes=800)  # about 100 shards
    whole = scan([data], options=opts, findings_path=tmp_path / "whole.jsonl")
    ckpt = tmp_path / "out" / checkpoint.FILENAME
    folded = {"n": 0}
    original = scan_mod.Progress.advance
    window = ray_engine.WINDOW * 2

    def stop_in_the_second_window(self, *a):
        original(self, *a)
        folded["n"] += 1
        if folded["n"] == window + 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(scan_mod.Progress, "advance", stop_in_the_second_window)
    with pytest.raises(KeyboardInterrupt):
        scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, checkpoint_seconds=0,
             engine="ray", ray_address=cluster)
    monkeypatch.setattr(scan_mod.Progress, "advance", original)
    assert ckpt.is_file() and not (tmp_path / "f.jsonl").exists()
    resumed = scan([data], options=opts, findings_path=tmp_path / "f.jsonl", checkpoint_path=ckpt, resume=True,
                   engine="ray", ray_address=cluster)
    assert _dump(resumed) == _dump(whole) and folded["n"] == window + 5 and whole.counts.records > 300
    assert (tmp_path / "f.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    import ray.data

    assert ray.data.DataContext.get_current().execution_options.preserve_order is False  # the caller's, restored
