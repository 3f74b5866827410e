"""The ed25519 key that signs ledger entries, heads and bundle manifests.

Generated on first use (PKCS#8 PEM, file mode 0600) at `--key PATH`, `$FTAUDIT_KEY`, or
`<user data dir>/ftaudit/keys/ledger_ed25519.pem`. Reviewers get the public half (`ftaudit ledger public-key`) and
pin it with `ftaudit verify --public-key FILE`: a signature only proves something against a key you trust.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ftaudit.errors import BadInput
from ftaudit.ledger.chain import sha256_hex

KEY_ENV = "FTAUDIT_KEY"
KEY_FILENAME = "ledger_ed25519.pem"


def default_key_path() -> Path:
    env = os.environ.get(KEY_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("ftaudit")) / "keys" / KEY_FILENAME


def key_id(public_raw: bytes) -> str:
    """A short fingerprint for messages; comparisons of trust use the full key."""
    return sha256_hex(public_raw)[:16]


def public_pem(public_raw: bytes) -> str:
    key = Ed25519PublicKey.from_public_bytes(public_raw)
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def parse_public_pem(text: str | bytes, *, source: str) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf-8")
    try:
        key = serialization.load_pem_public_key(text)
    except (ValueError, TypeError):
        raise BadInput(f"{source}: not a PEM public key; export one with `ftaudit ledger public-key`") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(f"{source}: not an ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(path: str | Path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read public key ({exc.strerror})") from None
    return parse_public_pem(data, source=str(path))


def verify_signature(public_raw: bytes, signature_hex: str, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError):
        return False


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public_raw: bytes
    path: Path

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    @property
    def public_pem(self) -> str:
        return public_pem(self.public_raw)

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def _from_private(private: Ed25519PrivateKey, path: Path) -> SigningKey:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(private=private, public_raw=raw, path=path)


def load_signing_key(path: str | Path | None = None) -> SigningKey:
    path = Path(path).expanduser() if path else default_key_path()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: no ledger signing key here; pass --key or record a run first") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read signing key ({exc.strerror})") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(f"{path}: private key is readable by others; run `chmod 600 {path}`")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise BadInput(f"{path}: not an ed25519 private key")
    return _from_private(private, path)


def load_or_create_signing_key(path: str | Path | None = None) -> SigningKey:
    """Load the key, creating it (and its `.pub.pem`) if absent. Safe when several processes start at once."""
    path = Path(path).expanduser() if path else default_key_path()
    if path.exists():
        return load_signing_key(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BadInput(f"cannot create key directory {path.parent}: {exc.strerror}") from None
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and fails if another process created the key first: then use theirs
        except FileExistsError:
            return load_signing_key(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    key = _from_private(private, path)
    from ftaudit.io import atomic_write_text

    os.chmod(atomic_write_text(public_key_path(path), key.public_pem), 0o644)  # the public half is for sharing
    return key


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.stem + ".pub.pem")
