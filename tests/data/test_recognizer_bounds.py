"""Each recogniser's `min_digits` (the prefilter that skips a region with fewer decimal digits) is a true lower
bound: derived here from the regex itself, the fewest characters a match must consume that can only be digits."""

from __future__ import annotations

import sys

import pytest

from ftaudit.data.patterns.recognizers import RECOGNIZERS

if sys.version_info >= (3, 11):
    from re import _constants as C  # noqa: N812
    from re import _parser as parser
else:  # pragma: no cover
    import sre_constants as C  # noqa: N812
    import sre_parse as parser

DIGITS = set(range(ord("0"), ord("9") + 1))


def _only_digits(items) -> bool:
    """An IN set whose every member is a decimal digit (a literal 0-9, a range inside it, or \\d)."""
    for op, av in items:
        if op is C.LITERAL and av in DIGITS:
            continue
        if op is C.RANGE and av[0] in DIGITS and av[1] in DIGITS:
            continue
        if op is C.CATEGORY and av is C.CATEGORY_DIGIT:
            continue
        return False
    return bool(items)


def min_digits(tree) -> int:
    total = 0
    for op, av in tree:
        if op is C.LITERAL:
            total += av in DIGITS
        elif op is C.IN:
            total += _only_digits(av)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT, C.POSSESSIVE_REPEAT if hasattr(C, "POSSESSIVE_REPEAT") else None):
            lo, _, sub = av
            total += lo * min_digits(sub)
        elif op is C.SUBPATTERN:
            total += min_digits(av[-1])
        elif op is C.BRANCH:
            total += min(min_digits(b) for b in av[1])
        elif op is C.ATOMIC_GROUP if hasattr(C, "ATOMIC_GROUP") else False:
            total += min_digits(av)
        # ASSERT, ASSERT_NOT, AT, GROUPREF, ANY, NOT_LITERAL: nothing certain to be a digit
    return total


@pytest.mark.parametrize("r", RECOGNIZERS, ids=lambda r: f"{r.type}:{r.regex.pattern[:24]}")
def test_min_digits_is_what_every_match_must_hold(r):
    derived = min_digits(parser.parse(r.regex.pattern, r.regex.flags))
    assert r.min_digits == derived if r.needs == "digit" else r.min_digits == 0


def test_the_derivation_counts_what_it_should():
    parse = parser.parse
    assert min_digits(parse(r"\d{3}-?\d{2}")) == 5
    assert min_digits(parse(r"(?:\d{2}|2[AB])x")) == 1
    assert min_digits(parse(r"[0-9A-F]{4}\d")) == 1
    assert min_digits(parse(r"(?<=\d{9})a(?!\d)")) == 0
