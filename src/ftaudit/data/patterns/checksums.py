"""Check-digit algorithms for identifiers. Each takes the identifier as found (separators allowed) and returns
True only when its check digit(s) and structure are valid. Sources are named per function."""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re

_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")


def compact(value: str) -> str:
    return _NON_ALNUM.sub("", value)


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        _dt.date(year, month, day)
    except ValueError:
        return False
    return True


def luhn(digits: str) -> bool:
    """ISO/IEC 7812-1 Annex B (Luhn mod 10)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Issuer identification prefixes of the major card schemes (ISO/IEC 7812; scheme rules).
# Mir 2200–2204, RuPay 60/65/81/82/508, Troy 9792; UATP (airline) numbers start with 1 and have 15 digits.
_CARD_PREFIX = re.compile(r"4|5[1-5]|2(?:2[2-9][1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])"
                          r"|35|62|50|5[6-8]|6|2131|1800|220[0-4]|8[12]|9792|1")  # JCB also issued 2131/1800
_MAESTRO = re.compile(r"5[06-8]|6")  # Maestro numbers may be as short as 12 digits


def credit_card(value: str) -> bool:
    digits = compact(value)
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    if len(digits) == 12 and not _MAESTRO.match(digits):
        return False
    if digits[0] == "1" and len(digits) != 15 and not digits.startswith(("1800", "2131")):
        return False  # UATP
    return bool(_CARD_PREFIX.match(digits)) and luhn(digits)


# IBAN lengths by country (ISO 13616 registry, SWIFT IBAN Registry release 2024).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
    "YE": 30,
}


def iban(value: str) -> bool:
    """ISO 13616: country length, then ISO 7064 MOD 97-10 over the rearranged number equals 1."""
    s = compact(value).upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    rearranged = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
    except ValueError:
        return False


def ipv4(value: str) -> bool:
    """Four decimal octets 0–255; leading zeros ("192.168.001.010") are how many logs write them."""
    parts = value.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    # "::" and "::1"-like stubs, or times such as "10::30", are not worth flagging as an address of a person.
    return sum(c.isalnum() for c in value) >= 4


def us_ssn(value: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000; known advertising numbers rejected."""
    d = compact(value)
    if len(d) != 9 or not d.isdigit() or len(set(d)) == 1:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return d not in {"078051120", "219099999", "123456789"}


def uk_nhs(value: str) -> bool:
    """NHS number: modulus 11 with weights 10..2 (NHS Data Dictionary)."""
    d = compact(value)
    if len(d) != 10 or not d.isdigit():
        return False
    check = 11 - sum(int(c) * w for c, w in zip(d[:9], range(10, 1, -1), strict=True)) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(d[9])


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_nif(value: str) -> bool:
    """DNI/NIF: 8 digits (a dropped leading zero restored) and the letter at index (number mod 23) (Real Decreto
    1553/2005)."""
    s = compact(value).upper()
    if len(s) == 8:
        s = "0" + s
    return len(s) == 9 and s[:8].isdigit() and len(set(s[:8])) > 1 and _NIF_LETTERS[int(s[:8]) % 23] == s[8]


def es_nie(value: str) -> bool:
    """NIE: X/Y/Z → 0/1/2, then the NIF letter rule (Orden INT/2058/2008)."""
    s = compact(value).upper()
    if len(s) != 9 or s[0] not in "XYZ" or not s[1:8].isdigit():
        return False
    return _NIF_LETTERS[int(str("XYZ".index(s[0])) + s[1:8]) % 23] == s[8]


_CF_ODD = {c: v for c, v in zip("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                 [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20,
                                  11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23], strict=True)}


_CF_MONTHS = "ABCDEHLMPRST"
_CF_OMOCODE = str.maketrans("LMNPQRSTUV", "0123456789")  # letters that replace digits in homocodic codes


def it_fiscal_code(value: str) -> bool:
    """Codice fiscale (DM 23/12/1976): a real birth date (day + 40 for women, digits possibly replaced by
    LMNPQRSTUV), then the check character: odd positions via table, even by value, mod 26."""
    s = compact(value).upper()
    if len(s) != 16:
        return False
    yy, dd = s[6:8].translate(_CF_OMOCODE), s[9:11].translate(_CF_OMOCODE)
    if not (yy.isdigit() and dd.isdigit()) or s[8] not in _CF_MONTHS:
        return False
    day = int(dd) - 40 if int(dd) > 40 else int(dd)
    if not _valid_date(2000, _CF_MONTHS.index(s[8]) + 1, day):  # a leap year: the century is not in the code
        return False
    total = 0
    for i, c in enumerate(s[:15]):
        if i % 2 == 0:
            total += _CF_ODD.get(c, -1000)
        else:
            total += int(c) if c.isdigit() else ord(c) - 65
    return total >= 0 and chr(65 + total % 26) == s[15]


def pl_pesel(value: str) -> bool:
    """PESEL: weights 1,3,7,9 repeating, check = (10 - sum mod 10) mod 10; month encodes the century."""
    d = compact(value)
    if len(d) != 11 or not d.isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(d[:10], (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), strict=True))
    if (10 - total % 10) % 10 != int(d[10]):
        return False
    yy, mm, dd = int(d[:2]), int(d[2:4]), int(d[4:6])
    century = {0: 1900, 1: 2000, 2: 2100, 3: 2200, 4: 1800}.get(mm // 20)
    return century is not None and _valid_date(century + yy, mm % 20, dd)


def de_tax_id(value: str) -> bool:
    """Steuerliche Identifikationsnummer (§ 139b AO; BZSt format rules): 11 digits, first not 0; in the first ten,
    exactly one digit occurs two or three times and every other digit at most once; check digit ISO 7064 MOD 11,10."""
    d = compact(value)
    if len(d) != 11 or not d.isdigit() or d[0] == "0":
        return False
    counts = sorted((d[:10].count(c) for c in set(d[:10])), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    product = 10
    for c in d[:10]:
        s = (int(c) + product) % 10 or 10
        product = (s * 2) % 11
    check = (11 - product) % 10
    return check == int(d[10])


def fr_nir(value: str) -> bool:
    """NIR (numéro de sécurité sociale): key = 97 - (13-digit number mod 97); Corsica 2A/2B counted as 19/18."""
    s = compact(value).upper()
    if len(s) != 15 or s[0] not in "12378":
        return False
    body, key = s[:13], s[13:]
    if not key.isdigit():
        return False
    if body[5:7] == "2A":
        number = int(body[:5] + "19" + body[7:]) - 1000000
    elif body[5:7] == "2B":
        number = int(body[:5] + "18" + body[7:]) - 2000000
    elif body.isdigit():
        number = int(body)
    else:
        return False
    month = int(body[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    return 97 - number % 97 == int(key)


def nl_bsn(value: str) -> bool:
    """Burgerservicenummer: the "elfproef" — 9·d1 + 8·d2 + … + 2·d8 − d9 ≡ 0 (mod 11)."""
    d = compact(value)
    if len(d) == 8:
        d = "0" + d
    if len(d) != 9 or not d.isdigit() or len(set(d)) == 1:
        return False
    total = sum(int(c) * w for c, w in zip(d[:8], range(9, 1, -1), strict=True)) - int(d[8])
    return total % 11 == 0 and total != 0


def se_personnummer(value: str) -> bool:
    """Personnummer (Skatteverket SKV 704): [CC]YYMMDD(-|+)NNNC, a real date (day + 60 = samordningsnummer),
    C = Luhn over the ten digits."""
    d = compact(value)
    century = None
    if len(d) == 12:
        century, d = int(d[:2]), d[2:]
    if len(d) != 10 or not d.isdigit():
        return False
    yy, mm, dd = int(d[:2]), int(d[2:4]), int(d[4:6])
    if dd > 60:
        dd -= 60
    years = [century * 100 + yy] if century is not None else [1900 + yy, 2000 + yy]
    return any(_valid_date(y, mm, dd) for y in years) and luhn(d)


_FI_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"


def fi_hetu(value: str) -> bool:
    """Henkilötunnus: DDMMYY, century sign, NNN, check = table[int(DDMMYYNNN) mod 31] (Population Register)."""
    s = value.strip().upper()
    if len(s) != 11 or not s[:6].isdigit() or not s[7:10].isdigit() or s[6] not in "+-ABCDEFYXWVU":
        return False
    century = 1800 if s[6] == "+" else 2000 if s[6] in "ABCDEF" else 1900
    if not _valid_date(century + int(s[4:6]), int(s[2:4]), int(s[:2])):
        return False
    return _FI_CHECK[int(s[:6] + s[7:10]) % 31] == s[10]


def be_national_number(value: str) -> bool:
    """Rijksregisternummer: check = 97 - (first 9 digits mod 97); for births from 2000 prefix a '2'."""
    d = compact(value)
    if len(d) != 11 or not d.isdigit():
        return False
    check = int(d[9:])
    if not 0 <= int(d[2:4]) <= 12:
        return False
    return 97 - int(d[:9]) % 97 == check or 97 - int("2" + d[:9]) % 97 == check
