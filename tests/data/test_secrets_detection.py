"""Secrets: each issuer format, passwords in URLs, entropy-scored assignments, and placeholders left alone."""

from __future__ import annotations

import base64
import json

import pytest

from ftaudit.data.secrets import detect_secrets, shannon_entropy


def _jwt() -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': '42', 'iat': 1700000000})}.{'Q9s_x-7kP2mZ' * 3}"


# Tokens are assembled at run time so that no literal credential-shaped string sits in the repository.
CASES = [
    ("AWS_ACCESS_KEY", "aws id " + "AKIA" + "Q3EGRTZ7VHN2WKLP" + " ok", "AKIA" + "Q3EGRTZ7VHN2WKLP"),
    ("AWS_SECRET_KEY", "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Qz8RtKe2Lp",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Qz8RtKe2Lp"),
    ("GITHUB_TOKEN", "token " + "ghp_" + "a1B2c3D4" * 4 + "e5F6", "ghp_" + "a1B2c3D4" * 4 + "e5F6"),
    ("GITLAB_TOKEN", "glpat-" + "Xy12_ab34-CD56ef78gh", "glpat-" + "Xy12_ab34-CD56ef78gh"),
    ("SLACK_TOKEN", "xoxb-" + "123456789012-abcDEF123456", "xoxb-" + "123456789012-abcDEF123456"),
    ("STRIPE_KEY", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"),
    ("OPENAI_API_KEY", "OPENAI=" + "sk-proj-" + "T3BlbkFJ" * 4, "sk-proj-" + "T3BlbkFJ" * 4),
    ("ANTHROPIC_API_KEY", "sk-ant-" + "api03-" + "Zx9" * 10, "sk-ant-" + "api03-" + "Zx9" * 10),
    ("HUGGINGFACE_TOKEN", "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567", "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
    ("GOOGLE_API_KEY", "key=" + "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
     "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("JWT", "Bearer " + _jwt(), _jwt()),
    ("PASSWORD_IN_URL", "DATABASE_URL=postgres://app:" + "Tr0ub4dor&3" + "@db.internal:5432/app", "Tr0ub4dor&3"),
]


@pytest.mark.parametrize("etype,text,value", CASES, ids=[c[0] for c in CASES])
def test_each_secret_type(etype, text, value):
    found = [(s.type, text[s.start:s.end]) for s in detect_secrets(text)]
    assert (etype, value) in found


def test_private_key_block_is_one_span():
    body = base64.b64encode(bytes(range(7, 250, 3)) * 2).decode()
    pem = "-----BEGIN RSA " + f"PRIVATE KEY-----\n{body[:64]}\n{body[64:]}\n-----END RSA " + "PRIVATE KEY-----"
    text = f"key:\n{pem}\nbye"
    spans = detect_secrets(text)
    assert [(s.type, text[s.start:s.end]) for s in spans] == [("PRIVATE_KEY", pem)]


def test_generic_assignment_scored_by_entropy():
    hi = 'api_key = "' + "x8Hq2LmZ9pR4tY7uW1vB3nK6" + '"'
    spans = detect_secrets(hi)
    assert [s.type for s in spans] == ["GENERIC_SECRET"] and spans[0].score <= 0.5
    assert shannon_entropy("aaaa") == 0.0


@pytest.mark.parametrize("text", [
    'password = "hellohello"',  # low entropy
    "api_key = ${API_KEY}",  # placeholder
    "postgres://user:password@localhost/db",  # documentation placeholder
    "token: <your-token-here>",
    "a JWT-looking eyJhbGciOi.eyJzdWIiOi.not-json-at-all-xx",
])
def test_placeholders_and_words_are_not_secrets(text):
    assert detect_secrets(text) == []
