"""`ftaudit ledger|verify|bundle` from the command line: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import sqlite3

import pytest
from ledger_helpers import make_record, make_run_dir

from ftaudit.cli import main
from ftaudit.ledger import open_ledger


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("ftaudit: error: "), err
    return lines[0]


def test_record_query_verify_bundle(sqlite_location, tmp_path, capsys):
    with open_ledger(sqlite_location) as ledger:
        run_dir, record = make_run_dir(tmp_path, ledger, flops=2.5e18)
    second = tmp_path / "second"
    make_record(status="stopped", flops=1.2e19).save(second)
    code, out, _ = _run(capsys, "ledger", "record", str(second))
    assert code == 0 and "recorded run" in out

    code, out, _ = _run(capsys, "ledger", "lineage", "lin-a")
    assert code == 0 and "cumulative compute: 1.4e+19 FLOP" in out
    code, out, _ = _run(capsys, "ledger", "lineage", "lin-a", "--json")
    assert json.loads(out)["cumulative_flops"] == pytest.approx(1.45e19)
    code, out, _ = _run(capsys, "ledger", "runs", "--status", "stopped", "--json")
    assert [r["status"] for r in json.loads(out)] == ["stopped"]

    code, out, _ = _run(capsys, "verify")
    assert code == 0 and "ledger ok" in out and "6 entries" in out
    code, out, _ = _run(capsys, "verify", str(run_dir))
    assert code == 0 and "run ok" in out

    pub = tmp_path / "pub.pem"
    assert _run(capsys, "ledger", "public-key", "-o", str(pub))[0] == 0
    bundle = tmp_path / "bundle.zip"
    code, out, _ = _run(capsys, "bundle", str(run_dir), "-o", str(bundle))
    assert code == 0 and bundle.exists()
    code, out, err = _run(capsys, "verify", str(bundle), "--public-key", str(pub))
    assert code == 0 and "bundle ok" in out and err == ""
    code, out, err = _run(capsys, "verify", str(bundle))
    assert code == 0 and "no trusted key given" in err  # unpinned: says so

    (run_dir / "docs" / "model_card.md").write_text("edited")
    code, _, err = _run(capsys, "verify", str(run_dir))
    assert code == 7 and "model_card.md: artefact modified" in _one_error_line(err)
    code, _, err = _run(capsys, "bundle", str(run_dir), "-o", str(tmp_path / "b2.zip"))
    assert code == 7 and not (tmp_path / "b2.zip").exists()


def test_wrong_key_and_checkpoint(sqlite_location, tmp_path, capsys):
    with open_ledger(sqlite_location) as ledger:
        ledger.record_run(make_record())
    other = tmp_path / "other.pem"
    from ftaudit.ledger.keys import load_or_create_signing_key

    load_or_create_signing_key(other)
    code, _, err = _run(capsys, "verify", "--public-key", str(tmp_path / "other.pub.pem"))
    assert code == 7 and "not a trusted key" in _one_error_line(err)

    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    code, _, err = _run(capsys, "verify", "--public-key", str(bad))
    assert code == 1 and "not a PEM public key" in _one_error_line(err)

    cp = tmp_path / "cp.json"
    assert _run(capsys, "ledger", "checkpoint", "-o", str(cp))[0] == 0
    code, out, _ = _run(capsys, "verify", "--checkpoint", str(cp))
    assert code == 0 and "checkpoint of 2 entries matched" in out


def test_corrupt_and_unreachable_ledgers(tmp_path, key_path, capsys):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    code, _, err = _run(capsys, "verify", str(junk))
    assert code == 1 and "not a SQLite database" in _one_error_line(err)
    code, _, err = _run(capsys, "ledger", "runs", "--status", "completed", "--ledger", str(junk))
    assert code == 1 and junk.read_bytes().startswith(b"this is not")  # untouched

    other_db = tmp_path / "other.sqlite"
    sqlite3.connect(other_db).execute("CREATE TABLE t (x)").connection.commit()
    code, _, err = _run(capsys, "verify", str(other_db))
    assert code == 1 and "not an ftaudit ledger" in _one_error_line(err)

    code, _, err = _run(capsys, "ledger", "runs", "--status", "completed",
                        "--ledger", "postgresql://auditor:s3cret@127.0.0.1:1/ledger")
    line = _one_error_line(err)
    assert code == 2 and "cannot reach the ledger database" in line
    assert "s3cret" not in line and "auditor:***@127.0.0.1:1" in line

    code, _, err = _run(capsys, "verify", str(tmp_path / "nowhere.sqlite"))
    assert code == 1 and not (tmp_path / "nowhere.sqlite").exists()


def test_damaged_ledger_file_fails_verification(sqlite_location, capsys):
    with open_ledger(sqlite_location) as ledger:
        for _ in range(40):
            ledger.record_run(make_record())
    con = sqlite3.connect(sqlite_location)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(open(sqlite_location, "rb").read())
    page = 4096
    for p in range(2, len(data) // page):  # scribble over every page but the header page
        data[p * page + 8: p * page + 64] = b"\xff" * 56
    open(sqlite_location, "wb").write(bytes(data))
    code, _, err = _run(capsys, "verify")
    assert code == 7 and "ledger file damaged" in _one_error_line(err)
