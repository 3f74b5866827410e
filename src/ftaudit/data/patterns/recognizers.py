"""Pattern recognisers for personal data, named with Presidio's entity names where Presidio has one.

A recogniser is a regular expression, a validator (checksum or parser) and context words. Scores follow
Presidio's convention (0–1): a validated checksum match scores high; a shape-only match scores low and is raised by
CONTEXT_BOOST when a context word appears near it. Types without a Presidio name (FR_NIR, NL_BSN,
BE_NATIONAL_NUMBER) use the same COUNTRY_IDENTIFIER style.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from ftaudit.data.patterns import checksums as ck

CONTEXT_BOOST = 0.35  # Presidio's default context enhancement
CONTEXT_BEFORE = 48  # characters searched for context words before a match …
CONTEXT_AFTER = 24  # … and after it


@dataclass(frozen=True)
class PatternRecognizer:
    type: str
    regex: re.Pattern
    score: float  # score of a match that passed `validate`
    validate: Callable[[str], bool] | None = None
    context: tuple[str, ...] = ()
    needs: str = "digit"  # where it can match: near a digit, or near "@" (emails) or "://"/"www." (URLs)
    group: int = 0  # the regex group that is the value
    bare_score: float | None = None  # score instead of `score` when the match has no separators at all
    # Decimal digits every match holds (a test derives it from the regex): a region with fewer is not searched.
    min_digits: int = 0


def _rx(pattern: str, flags: int = 0) -> re.Pattern:
    return re.compile(pattern, flags)


# Emails: RFC 5321 local part (common subset) and a dotted domain with an alphabetic TLD.
# Internationalised addresses (RFC 6531) use letters of any script; "mailto:" may precede one.
_EMAIL = _rx(r"(?:(?<=mailto:)|(?<![\w.%+\-:/']))[^\W_][\w.%+\-']{0,63}@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.){1,8}"
             r"(?:[^\W\d_]{2,24}|xn--[a-z0-9\-]{2,59})(?![\w\-])")
_FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "js", "css", "py", "txt", "json", "html"}


def _email(value: str) -> bool:
    tld = value.rsplit(".", 1)[-1].lower()
    local = value.split("@", 1)[0]
    return tld not in _FILE_TLDS and ".." not in local and not local.endswith(".")


_URL = _rx(r"\b(?i:https?|s?ftps?|wss?)://[^\s<>\"'`]+|\bwww\.[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+[^\s<>\"'`]*")
# Bare domains ("example.com/path"): only with a top-level domain from this list (lower or upper case), so that
# file names, abbreviations and sentences run together ("home.It was") are not taken for one.
BARE_TLDS = ("com", "org", "net", "edu", "gov", "int", "info", "biz", "io", "ai", "app", "dev", "co", "me", "tv",
             "uk", "de", "fr", "es", "it", "nl", "be", "at", "ch", "se", "fi", "dk", "no", "pl", "pt", "ie", "eu",
             "us", "ca", "au", "jp", "cn", "in", "br", "ru")
_TLD_ALT = "|".join(BARE_TLDS) + "|" + "|".join(t.upper() for t in BARE_TLDS)
_BARE_URL = _rx(r"(?<![\w@.\-/:])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+(?:" + _TLD_ALT + r")"
                r"(?::\d{2,5})?(?:/[^\s<>\"'`]*)?(?![\w\-@])")
TLD_HIT = _rx(r"\.(?:" + _TLD_ALT + r")(?![A-Za-z0-9])")  # where a bare domain can end: the scan's prefilter
_IPV4 = _rx(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# An address may follow a label and a colon ("IP:2001:db8::1"); inside an address a group follows a digit or colon.
_IPV6 = _rx(r"(?:(?<![\w:])|(?<=[G-Zg-z]:))(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
            r"(?![\w:])")
_CARD = _rx(r"(?<![\d\-.])\d(?:[ \-]?\d){11,18}(?![\d\-]|\.\d)")
_IBAN = _rx(r"\b[A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,30}\b")
_SSN = _rx(r"(?<![\d\-.])\d{3}(?:[\- .]\d{2}[\- .]|\d{2})\d{4}(?![\d\-]|\.\d)")  # 3-2-4: both separators or none
_NHS = _rx(r"(?<![\d\-.])\d{3}([\- ]?)\d{3}\1\d{4}(?![\d\-]|\.\d)")
# HMRC's NIM39110: two prefix letters (D, F, I, Q, U, V never; O not second; some pairs never), six digits, a suffix
# A–D; written in upper or lower case, in pairs separated by spaces or hyphens, or run together.
_NINO = _rx(r"(?i)(?<![a-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][ \-]?\d{2}[ \-]?\d{2}"
            r"[ \-]?\d{2}[ \-]?[A-D](?![a-z0-9])")
# DNI/NIF: 8 digits (7 where the leading zero is dropped), dots as thousands separators, a letter in either case;
# may be glued to a label ("DNI12345678Z"); after a space only a capital (not the word "a" or "y").
_NIF = _rx(r"(?<![\d.\-])(?:\d{8}|\d{7}|\d{2}\.\d{3}\.\d{3})(?:-?[A-Za-z]| [A-Z])(?![A-Za-z0-9])")
_NIE = _rx(r"(?<![0-9])[XYZxyz][ \-.]?\d{7}(?:-?[A-Za-z]| [A-Z])(?![A-Za-z0-9])")
_CF = _rx(r"(?i)(?<![a-z0-9])[A-Z]{6}[\dLMNP-V]{2}[A-EHLMPR-T][\dLMNP-V]{2}[A-Z][\dLMNP-V]{3}[A-Z](?![a-z0-9])")
_PESEL = _rx(r"(?<![\d\-.])\d{11}(?![\d\-]|\.\d)")
_DE_TAX = _rx(r"(?<![\d\-.])\d{2} ?\d{3} ?\d{3} ?\d{3}(?![\d\-]|\.\d)")
_NIR = _rx(r"(?<![\d\-.])[12378] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}(?![\d\-]|\.\d)")
_BSN = _rx(r"(?<![\d\-.])\d{4}\.?\d{2}\.?\d{3}(?![\d\-]|\.\d)")
_PNR = _rx(r"(?<![\d\-.])(?:1[89]|20)?\d{6}[\-+ ]?\d{4}(?![\d\-]|\.\d)")
_HETU = _rx(r"(?<![\w\-])\d{6}[\-+ABCDEFYXWVU]\d{3}[0-9A-Y](?![\w\-])")
_BE_NN = _rx(r"(?<![\d\-.])\d{2}\.?\d{2}\.?\d{2}[\-.]?\d{3}\.?\d{2}(?![\d\-]|\.\d)")

# Phone candidates: digits with common separators, an optional +/00 country prefix, parenthesised area codes and
# an optional extension. Validated below with `phonenumbers` (libphonenumber metadata) when it is installed.
_PHONE = _rx(r"(?<![\w+@/\-.])(?:\+|\b00)?(?:\(\d{1,5}\)|\d)(?:[ \-./\u00a0]{0,2}(?:\(\d{1,5}\)|\d)){5,18}"
             r"(?:\s?(?:x|ext\.?|#)\s?\d{1,6})?(?![\w@]|[\-.]\d)")
_DATE_LIKE = _rx(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{4}")
_DOTTED_QUAD = _rx(r"\d{1,3}(?:\.\d{1,3}){3}")
_EXTENSION = _rx(r"\s?(?:x|ext\.?|#)\s?\d{1,6}$")
PHONE_REGIONS = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BE", "AT", "CH", "PL", "SE", "FI", "DK", "IE", "PT")

_TRUNK_ZERO = ("GB", "DE", "FR", "NL", "BE", "AT", "CH", "SE", "FI", "IE", "IT", "PT", "DK")


def candidate_regions(digits: str) -> tuple[str, ...]:
    """Regions whose national numbering plan could produce this digit string (parsing is the slow part, so try
    only plausible ones): a leading 0 is a trunk prefix in most of Europe (and Italian landlines); NANP numbers
    have 10 digits (11 with a leading 1); ES/PL/PT numbers 9 digits without a trunk prefix; DK 8; IT mobiles 3xx."""
    if digits[0] == "0":
        return _TRUNK_ZERO
    regions = []
    if len(digits) == 10 or (len(digits) == 11 and digits[0] == "1"):
        regions.append("US")
    if len(digits) == 9:
        regions += ["ES", "PL", "PT", "FR", "BE"]
    if len(digits) == 8:
        regions += ["DK", "BE"]
    if digits[0] == "3":
        regions.append("IT")
    return tuple(regions)


try:  # libphonenumber's metadata makes phone validation precise (a core dependency); without it, a shape heuristic
    import phonenumbers as _pn
except ImportError:  # pragma: no cover - an install that dropped the dependency; every report says so
    _pn = None

PHONE_BACKEND = (f"phone numbers validated against libphonenumber's numbering plans (phonenumbers "
                 f"{_pn.__version__})" if _pn is not None else
                 "phone numbers judged by a digit-layout heuristic only (the phonenumbers package is not installed: "
                 "pip install phonenumbers)")


@lru_cache(maxsize=1 << 16)  # libphonenumber parsing is the costly step; logs and corpora repeat their numbers
def phone_score(value: str) -> float:
    """0 (reject) … 0.75 for a phone candidate."""
    if _DATE_LIKE.search(value) or _DOTTED_QUAD.fullmatch(value):  # dates (2024-01-15, 15.01.2024) and IPv4-like
        return 0.0
    core = _EXTENSION.sub("", value)
    digits = re.sub(r"\D", "", core)
    if not 7 <= len(digits) <= 15 or len(set(digits)) <= 2:
        return 0.0
    international = core.startswith("+") or core.startswith("00")
    if _pn is not None:
        try:
            if international:
                num = _pn.parse("+" + digits[2:] if core.startswith("00") else core, None)
                return 0.75 if _pn.is_valid_number(num) else (0.4 if _pn.is_possible_number(num) else 0.0)
            separated = bool(re.search(r"[ \-./()]", core))
            for region in candidate_regions(digits):
                num = _pn.parse(core, region)
                if _pn.is_valid_number(num):
                    # A bare digit run is as likely an ID or an order number: below checksum-validated IDs.
                    return 0.6 if separated else 0.35
        except _pn.NumberParseException:
            return 0.0
    separated = bool(re.search(r"[ \-./()]", core))
    return 0.4 if (international or separated) and len(digits) >= 8 else 0.2


PHONE_CONTEXT = ("phone", "tel", "mobile", "cell", "call", "fax", "contact", "whatsapp", "sms",
                 "telefon", "handy", "rufnummer", "téléphone", "telephone", "portable", "numéro", "teléfono",
                 "móvil", "telefono", "cellulare", "telefoonnummer", "bellen", "mobiel", "telefonnummer")

# Words that say a digit run is a document number, not a phone: lower the score (never below zero).
PHONE_NEGATIVE_CONTEXT = ("invoice", "order", "reference", "ref", "ticket", "isbn", "version", "batch", "serial",
                          "tracking", "receipt", "rechnung", "bestellung", "facture", "commande", "factura",
                          "pedido", "fattura", "ordine", "factuur", "bestelling")
PHONE_NEGATIVE_PENALTY = 0.3
# An identifier's label right before the digits ("personnummer: 850231-1237") says they are that identifier,
# valid or not, and not a phone number.
ID_LABEL_BEFORE = _rx(r"(?i)(?<![^\W\d_])(?:ssn|social security(?: number)?|personnummer|personnr|nif|dni|nie|pesel"
                      r"|bsn|burgerservicenummer|nino|national insurance(?: number)?|nhs(?: number)?|hetu"
                      r"|henkilötunnus|codice fiscale|steuer-id|idnr|insee|iban|rijksregisternummer|insz|niss)"
                      r"[\s:#.\-]{0,3}$")

RECOGNIZERS: tuple[PatternRecognizer, ...] = (
    PatternRecognizer("EMAIL_ADDRESS", _EMAIL, 1.0, _email, ("email", "e-mail", "mail"), needs="@"),
    PatternRecognizer("URL", _URL, 0.5, None, ("url", "link", "website", "site"), needs="/"),
    PatternRecognizer("URL", _BARE_URL, 0.4, None, ("url", "link", "website", "site", "visit"), needs="."),
    PatternRecognizer("IP_ADDRESS", _IPV4, 0.8, ck.ipv4, ("ip", "address", "host", "server", "client"),
                      min_digits=4),
    PatternRecognizer("IP_ADDRESS", _IPV6, 0.8, ck.ipv6, ("ip", "ipv6", "address", "host")),
    PatternRecognizer("CREDIT_CARD", _CARD, 0.9, ck.credit_card,
                      ("card", "credit", "visa", "mastercard", "amex", "cc", "karte", "carte", "tarjeta", "carta"),
                      min_digits=12),
    PatternRecognizer("IBAN_CODE", _IBAN, 1.0, ck.iban, ("iban", "account", "bank", "konto", "compte", "cuenta"),
                      min_digits=2),
    # Nine bare digits are an SSN only with context (Presidio scores them 0.05).
    PatternRecognizer("US_SSN", _SSN, 0.5, ck.us_ssn, ("ssn", "social security", "social"), bare_score=0.1,
                      min_digits=9),
    PatternRecognizer("UK_NHS", _NHS, 0.5, ck.uk_nhs, ("nhs", "health service", "patient"), min_digits=10),
    PatternRecognizer("UK_NINO", _NINO, 0.5, None, ("national insurance", "nino", "ni number"), min_digits=6),
    PatternRecognizer("ES_NIF", _NIF, 0.85, ck.es_nif, ("nif", "dni", "documento", "identidad"), min_digits=7),
    PatternRecognizer("ES_NIE", _NIE, 0.85, ck.es_nie, ("nie", "extranjero", "identidad"), min_digits=7),
    PatternRecognizer("IT_FISCAL_CODE", _CF, 0.9, ck.it_fiscal_code, ("codice fiscale", "fiscale", "cf")),
    PatternRecognizer("PL_PESEL", _PESEL, 0.5, ck.pl_pesel, ("pesel",), min_digits=11),
    PatternRecognizer("DE_TAX_ID", _DE_TAX, 0.45, ck.de_tax_id,
                      ("steuer", "identifikationsnummer", "steuer-id", "idnr", "tax id", "tin"), min_digits=11),
    PatternRecognizer("FR_NIR", _NIR, 0.85, ck.fr_nir,
                      ("sécurité sociale", "securite sociale", "nir", "insee", "numéro de sécu", "social"),
                      min_digits=14),
    PatternRecognizer("NL_BSN", _BSN, 0.4, ck.nl_bsn, ("bsn", "burgerservicenummer", "sofinummer"), min_digits=9),
    PatternRecognizer("SE_PERSONNUMMER", _PNR, 0.6, ck.se_personnummer, ("personnummer", "personnr"),
                      min_digits=10),
    PatternRecognizer("FI_PERSONAL_IDENTITY_CODE", _HETU, 0.9, ck.fi_hetu,
                      ("henkilötunnus", "hetu", "personbeteckning"), min_digits=9),
    PatternRecognizer("BE_NATIONAL_NUMBER", _BE_NN, 0.45, ck.be_national_number,
                      ("rijksregisternummer", "numéro national", "national number", "insz", "niss"), min_digits=11),
)

# Every type these recognisers (and the phone detector) can emit.
PATTERN_TYPES = tuple(sorted({r.type for r in RECOGNIZERS} | {"PHONE_NUMBER"}))
