"""A run directory against the ledger, and bundles checked offline: every change is caught and named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from ledger_helpers import make_run_dir

from ftaudit.errors import BadInput, VerificationFailed
from ftaudit.ledger import open_ledger
from ftaudit.ledger.bundle import verify_bundle, write_bundle
from ftaudit.ledger.keys import key_id, load_or_create_signing_key, load_signing_key
from ftaudit.ledger.verify import Trust, load_trust, verify_run_dir


@pytest.fixture
def run(sqlite_location, tmp_path):
    with open_ledger(sqlite_location) as ledger:
        run_dir, record = make_run_dir(tmp_path, ledger)
    return sqlite_location, run_dir, record


def _verify_dir(location, run_dir):
    with open_ledger(location, create=False) as ledger:
        return verify_run_dir(ledger, run_dir, load_trust())


def test_run_dir_verifies(run):
    location, run_dir, record = run
    report = _verify_dir(location, run_dir)
    assert report.run_id == record.run_id and report.artefacts_checked == 3


@pytest.mark.parametrize("change, match", [
    (lambda d: (d / "docs" / "model_card.md").write_text("# Model card\n\nTuned on other data.\n"),
     r"docs/model_card.md: artefact modified"),
    (lambda d: (d / "docs" / "annex_xi.json").unlink(), r"docs/annex_xi.json: artefact missing"),
    (lambda d: (d / "adapter" / "adapter_model.bin").write_bytes(b"\0" * 4096),
     r"adapter/adapter_model.bin: artefact modified"),
])
def test_run_dir_changes_detected(run, change, match):
    location, run_dir, _ = run
    change(run_dir)
    with pytest.raises(VerificationFailed, match=match):
        _verify_dir(location, run_dir)


def test_run_record_change_names_the_field(run):
    location, run_dir, _ = run
    data = json.loads((run_dir / "run_record.json").read_text())
    data["compute"]["regulatory_flops"] = 1.0
    (run_dir / "run_record.json").write_text(json.dumps(data))
    with pytest.raises(VerificationFailed, match=r"differs from ledger entry \d+ at field compute.regulatory_flops"):
        _verify_dir(location, run_dir)


def test_run_not_in_ledger(run, tmp_path, monkeypatch):
    _, run_dir, _ = run
    with open_ledger(tmp_path / "other.sqlite") as other:
        with pytest.raises(VerificationFailed, match="is not in ledger"):
            verify_run_dir(other, run_dir, load_trust())


@pytest.fixture
def bundle(run, tmp_path):
    location, run_dir, record = run
    out = tmp_path / "out" / "bundle.zip"
    with open_ledger(location, create=False) as ledger:
        write_bundle(ledger, run_dir, out, load_signing_key(), load_trust())
    return out, record


def _pinned() -> Trust:
    raw = load_signing_key().public_raw
    return Trust(keys={key_id(raw): raw}, pinned=True)


def test_bundle_contents_and_offline_verification(bundle, key_path, tmp_path):
    out, record = bundle
    names = set(zipfile.ZipFile(out).namelist())
    assert {"manifest.json", "manifest.sig", "run/run_record.json", "run/docs/model_card.md",
            "run/docs/annex_xi.json", "run/data_evidence.json", "ledger/entries.jsonl", "ledger/chain.jsonl",
            "ledger/head.json", f"keys/{load_signing_key().key_id}.pem"} == names
    manifest = json.loads(zipfile.ZipFile(out).read("manifest.json"))
    assert [f["path"] for f in manifest["referenced"]] == ["run/adapter/adapter_model.bin"]  # weights: hash only
    assert verify_bundle(out, _pinned()).run_id == record.run_id
    # A machine that never saw the ledger or the key: a fresh process with empty HOME, no ledger, no key.
    env = {**os.environ, "HOME": str(tmp_path / "elsewhere"), "XDG_DATA_HOME": str(tmp_path / "elsewhere"),
           "FTAUDIT_LEDGER": str(tmp_path / "absent.sqlite"), "FTAUDIT_KEY": str(tmp_path / "absent.pem")}
    pub = tmp_path / "provider.pub.pem"
    pub.write_text(load_signing_key().public_pem)
    r = subprocess.run([sys.executable, "-m", "ftaudit.cli", "verify", str(out), "--public-key", str(pub)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "bundle ok" in r.stdout
    assert not (tmp_path / "absent.sqlite").exists() and not (tmp_path / "absent.pem").exists()


def _rewrite(src: Path, dst: Path, *, drop=(), add=None, replace=None) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name in drop:
                continue
            data = zin.read(name)
            if replace and name in replace:
                data = replace[name](data)
            zout.writestr(name, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("edit, match", [
    (dict(drop=["run/docs/model_card.md"]), r"file run/docs/model_card.md is missing"),
    (dict(add={"run/docs/extra.md": b"planted"}), r"extra file run/docs/extra.md"),
    (dict(replace={"run/docs/annex_xi.json": lambda b: b.replace(b"true", b"false")}),
     r"file run/docs/annex_xi.json modified"),
    (dict(replace={"manifest.json": lambda b: b.replace(b'"bytes": ', b'"bytes":  ', 1)}),
     r"manifest.json does not match its signature"),
    (dict(drop=["manifest.sig"]), r"manifest.sig is missing"),
    (dict(replace={"ledger/chain.jsonl": lambda b: b"\n".join(b.splitlines()[1:]) + b"\n"}),
     r"ledger/chain.jsonl modified"),
])
def test_bundle_changes_detected(bundle, tmp_path, edit, match):
    out, _ = bundle
    with pytest.raises(VerificationFailed, match=match):
        verify_bundle(_rewrite(out, tmp_path / "t.zip", **edit), _pinned())


def test_bundle_resigned_with_another_key(bundle, tmp_path):
    """A forger rebuilds the manifest with their own key: consistent, but not the provider's key."""
    out, _ = bundle
    forger = load_or_create_signing_key(tmp_path / "forger.pem")
    with zipfile.ZipFile(out) as z:
        manifest = json.loads(z.read("manifest.json"))
    manifest["bundler_key_id"] = forger.key_id
    from ftaudit.ledger.chain import MANIFEST_DOMAIN, sha256_hex

    pem = forger.public_pem.encode()
    manifest["files"].append({"path": f"keys/{forger.key_id}.pem", "sha256": sha256_hex(pem), "bytes": len(pem),
                              "ledger_seq": None})
    data = (json.dumps(manifest, indent=2) + "\n").encode()
    forged = _rewrite(out, tmp_path / "forged.zip", drop=["manifest.json", "manifest.sig"], add={
        "manifest.json": data, "manifest.sig": forger.sign(MANIFEST_DOMAIN + data).encode(),
        f"keys/{forger.key_id}.pem": pem})
    verify_bundle(forged, Trust())  # unpinned: internally consistent (the CLI warns and prints the key ids)
    with pytest.raises(VerificationFailed, match=rf"signed by key {forger.key_id}, which is not a trusted key"):
        verify_bundle(forged, _pinned())


def test_not_a_zip_is_bad_input(tmp_path):
    bad = tmp_path / "bundle.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(BadInput, match="not a zip archive"):
        verify_bundle(bad, Trust())


def test_no_bundle_written_for_a_tampered_run(run, tmp_path):
    location, run_dir, _ = run
    (run_dir / "docs" / "model_card.md").write_text("changed")
    out = tmp_path / "out" / "bundle.zip"
    with open_ledger(location, create=False) as ledger:
        with pytest.raises(VerificationFailed, match="model_card.md: artefact modified"):
            write_bundle(ledger, run_dir, out, load_signing_key(), load_trust())
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file left either


def _resigned(out: Path, dst: Path, replace: dict) -> Path:
    """Edit members and rebuild a correctly signed manifest with the real key: only the ledger layer can object."""
    from ftaudit.ledger.chain import MANIFEST_DOMAIN, sha256_hex

    key = load_signing_key()
    with zipfile.ZipFile(out) as z:
        members = {n: z.read(n) for n in z.namelist()}
    for name, fn in replace.items():
        members[name] = fn(members[name])
    manifest = json.loads(members["manifest.json"])
    for f in manifest["files"]:
        f["sha256"], f["bytes"] = sha256_hex(members[f["path"]]), len(members[f["path"]])
    members["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    members["manifest.sig"] = key.sign(MANIFEST_DOMAIN + members["manifest.json"]).encode()
    with zipfile.ZipFile(dst, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return dst


def _edit_record(b: bytes) -> bytes:
    d = json.loads(b)
    d["status"] = "failed"
    return json.dumps(d).encode()


def _edit_entry(b: bytes) -> bytes:
    lines = [json.loads(x) for x in b.splitlines()]
    lines[-1]["content"]["data"] = {"stage": "forged"}
    return b"\n".join(json.dumps(x).encode() for x in lines) + b"\n"


@pytest.mark.parametrize("member, fn, match", [
    ("run/run_record.json", _edit_record, r"run_record.json differs from ledger entry \d+ at field status"),
    ("ledger/entries.jsonl", _edit_entry, r"ledger/entries.jsonl entry \d+ modified"),
    ("run/docs/model_card.md", lambda b: b + b"x", r"run/docs/model_card.md does not match its ledger entry"),
    ("ledger/head.json", lambda b: b.replace(b'"count": ', b'"count": 1'), r"head.json: signature does not match"),
])
def test_bundle_ledger_layer_catches_resigned_manifest(bundle, tmp_path, member, fn, match):
    out, _ = bundle
    with pytest.raises(VerificationFailed, match=match):
        verify_bundle(_resigned(out, tmp_path / "r.zip", {member: fn}), _pinned())


def test_dataset_artefacts_are_referenced_never_packed(run, tmp_path):
    location, run_dir, record = run
    planted = '{"prompt": "I am Marta Kowalczyk, marta.kowalczyk@example.org"}\n'
    (run_dir / "data").mkdir()
    (run_dir / "data" / "train.jsonl").write_text(planted)
    (run_dir / "eval.json").write_text(planted)  # a dataset at the top level, where *.json is otherwise packed
    with open_ledger(location, create=False) as ledger:
        ledger.register_file(record.run_id, run_dir, "data/train.jsonl", kind="dataset:train")
        ledger.register_file(record.run_id, run_dir, "eval.json", kind="dataset:eval")
        out = tmp_path / "out" / "data.zip"
        write_bundle(ledger, run_dir, out, load_signing_key(), load_trust())
    z = zipfile.ZipFile(out)
    assert "run/data/train.jsonl" not in z.namelist() and "run/eval.json" not in z.namelist()
    assert not any("Kowalczyk" in z.read(n).decode("utf-8", "replace") for n in z.namelist())
    referenced = {f["path"] for f in json.loads(z.read("manifest.json"))["referenced"]}
    assert {"run/data/train.jsonl", "run/eval.json"} <= referenced
    assert verify_bundle(out, _pinned()).referenced == len(referenced)
