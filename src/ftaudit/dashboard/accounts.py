"""Dashboard accounts: local users with a role, a memory-hard password hash, a personal ed25519 signing key kept
encrypted under the password, and API tokens for automation.

  dashboard_users(username, role, password, key_salt, sealed_key, public_key, created_at, disabled)
  dashboard_tokens(token_sha256, username, label, created_at)

Passwords: scrypt (RFC 7914; n=2^15, r=8, p=1: 32 MiB and about 0.1 s per try), salted per user. The personal key
signs a reviewer's approvals; its private half is sealed with AES-GCM under a second scrypt key of the password, so
signing needs the password again (a re-authentication at the moment of sign-off). Creating a user is a signed ledger
event carrying the public key, so an approval verifies against a key the chain anchored before it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from ftaudit.dashboard.roles import ROLES
from ftaudit.errors import BadInput
from ftaudit.ledger.core import Ledger

USER_EVENT = "dashboard.user"
# Dashboard events that belong to no run (users, logins) are filed under this run id, so reading them back is an
# indexed lookup rather than a scan of every entry.
SCOPE = "ftaudit.dashboard"
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024, "dklen": 32}
MIN_PASSWORD = 12
TABLES = ["""CREATE TABLE IF NOT EXISTS dashboard_users (
               username TEXT PRIMARY KEY,
               role TEXT NOT NULL,
               password TEXT NOT NULL,
               key_salt TEXT NOT NULL,
               sealed_key TEXT NOT NULL,
               public_key TEXT NOT NULL,
               created_at TEXT NOT NULL,
               disabled INTEGER NOT NULL DEFAULT 0)""",
          """CREATE TABLE IF NOT EXISTS dashboard_tokens (
               token_sha256 TEXT PRIMARY KEY,
               username TEXT NOT NULL,
               label TEXT NOT NULL,
               created_at TEXT NOT NULL)""",
          """CREATE TABLE IF NOT EXISTS dashboard_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
          # the overview lists versions newest first, a page at a time
          "CREATE INDEX IF NOT EXISTS dashboard_runs_by_last_seq ON runs (last_seq)"]


@dataclass(frozen=True)
class User:
    username: str
    role: str
    public_key: str

    def can(self, role: str) -> bool:
        """At least `role`: viewer < engineer < reviewer < admin."""
        return ROLES.index(self.role) >= ROLES.index(role)


def create_tables(ledger: Ledger) -> None:
    with ledger.store.transaction(write=True):
        for stmt in TABLES:
            ledger.store.execute(stmt)


def setting(ledger: Ledger, name: str, make) -> str:
    """A per-ledger setting (the session-cookie secret), made once by `make()`."""
    row = ledger.store.one("SELECT value FROM dashboard_settings WHERE name = ?", (name,))
    if row:
        return row[0]
    with ledger.store.transaction(write=True):
        ledger.store.execute("INSERT INTO dashboard_settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                             (name, make()))
    return ledger.store.one("SELECT value FROM dashboard_settings WHERE name = ?", (name,))[0]


def _kdf(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **SCRYPT)


def _hash_password(password: str) -> str:
    salt = os.urandom(16)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${_kdf(password, salt).hex()}"


def _check_password(password: str, stored: str) -> bool:
    _, n, r, p, salt, digest = stored.split("$")
    got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                         maxmem=SCRYPT["maxmem"], dklen=len(digest) // 2)
    return hmac.compare_digest(got.hex(), digest)


def valid_username(name: str) -> str:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise BadInput(f"user name {name!r}: 1–64 letters, digits or . _ - @")
    return name


def add_user(ledger: Ledger, username: str, role: str, password: str, *, by: str) -> User:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    valid_username(username)
    if role not in ROLES:
        raise BadInput(f"role {role!r}: choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise BadInput(f"the password must have at least {MIN_PASSWORD} characters")
    create_tables(ledger)
    if ledger.store.one("SELECT 1 FROM dashboard_users WHERE username = ?", (username,)):
        raise BadInput(f"user {username!r} exists already")
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    key_salt = os.urandom(16)
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(_kdf(password, key_salt)).encrypt(nonce, raw, username.encode())
    now = datetime.now(timezone.utc).isoformat()
    with ledger.store.transaction(write=True):
        ledger.store.execute("INSERT INTO dashboard_users (username, role, password, key_salt, sealed_key, "
                             "public_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (username, role, _hash_password(password), key_salt.hex(), sealed.hex(), public, now))
        ledger.record_event(SCOPE, USER_EVENT, {"username": username, "role": role, "public_key": public, "by": by})
    return User(username, role, public)


def authenticate(ledger: Ledger, username: str, password: str) -> User | None:
    row = ledger.store.one("SELECT role, password, public_key, disabled FROM dashboard_users WHERE username = ?",
                           (username,))
    if row is None:
        _check_password(password, _DUMMY)  # the same work for an unknown name: no timing oracle on user names
        return None
    role, stored, public, disabled = row
    if disabled or not _check_password(password, stored):
        return None
    return User(username, role, public)


def user(ledger: Ledger, username: str) -> User | None:
    row = ledger.store.one("SELECT role, public_key, disabled FROM dashboard_users WHERE username = ?", (username,))
    return User(username, row[0], row[1]) if row and not row[2] else None


def users(ledger: Ledger) -> list[User]:
    return [User(u, r, k) for u, r, k in ledger.store.query(
        "SELECT username, role, public_key FROM dashboard_users WHERE disabled = 0 ORDER BY username")]


def sign_as(ledger: Ledger, username: str, password: str, message: bytes) -> str:
    """The user's signature over `message`, with the key their password unseals; BadInput for a wrong password."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    row = ledger.store.one("SELECT key_salt, sealed_key FROM dashboard_users WHERE username = ? AND disabled = 0",
                           (username,))
    if row is None:
        raise BadInput(f"no active user {username!r}")
    sealed = bytes.fromhex(row[1])
    try:
        raw = AESGCM(_kdf(password, bytes.fromhex(row[0]))).decrypt(sealed[:12], sealed[12:], username.encode())
    except InvalidTag:
        raise BadInput("wrong password: signing needs your password") from None
    return Ed25519PrivateKey.from_private_bytes(raw).sign(message).hex()


def anchored_keys(ledger: Ledger) -> dict[str, str]:
    """username -> public key, as the signed ledger recorded them (not as the mutable users table says)."""
    return {c["data"]["username"]: c["data"]["public_key"] for c in ledger.events(run_id=SCOPE, prefix=USER_EVENT)}


def new_token(ledger: Ledger, username: str, label: str) -> str:
    token = "fta_" + secrets.token_urlsafe(32)
    with ledger.store.transaction(write=True):
        ledger.store.execute("INSERT INTO dashboard_tokens (token_sha256, username, label, created_at) "
                             "VALUES (?, ?, ?, ?)", (hashlib.sha256(token.encode()).hexdigest(), username, label,
                                                     datetime.now(timezone.utc).isoformat()))
    return token


def token_user(ledger: Ledger, token: str) -> User | None:
    row = ledger.store.one("SELECT username FROM dashboard_tokens WHERE token_sha256 = ?",
                           (hashlib.sha256(token.encode()).hexdigest(),))
    return user(ledger, row[0]) if row else None


_DUMMY = _hash_password(secrets.token_hex(8))
