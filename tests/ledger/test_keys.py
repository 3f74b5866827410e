"""The signing key: created once, private, refused when unusable; canonical JSON is stable."""

from __future__ import annotations

import os

import pytest

from ftaudit.cli import main
from ftaudit.errors import BadInput
from ftaudit.ledger.chain import canonical_json
from ftaudit.ledger.keys import load_or_create_signing_key, load_signing_key, public_key_path


def test_key_created_private_and_reused(key_path):
    key = load_or_create_signing_key()
    assert key.path == key_path and (key_path.stat().st_mode & 0o777) == 0o600
    assert (public_key_path(key_path).stat().st_mode & 0o777) == 0o644
    assert load_or_create_signing_key().key_id == key.key_id


def test_unusable_keys_are_bad_input(key_path, tmp_path, capsys):
    key = load_or_create_signing_key()
    os.chmod(key_path, 0o644)
    with pytest.raises(BadInput, match="readable by others; run `chmod 600"):
        load_signing_key()
    os.chmod(key_path, 0o600)
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(key.public_pem)  # a public key where the private key belongs
    os.chmod(wrong, 0o600)
    assert main(["ledger", "public-key", "--key", str(wrong)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an unencrypted PEM private key" in err


def test_canonical_json_is_order_and_space_free():
    assert canonical_json({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
