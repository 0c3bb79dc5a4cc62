"""FIGI validation (structure and check digit) and custom identifiers for FIGI-less SecIds."""

from __future__ import annotations

import re

_FIGI = re.compile(r"^[A-Z]{2}G[0-9BCDFGHJKLMNPQRSTVWXYZ]{8}[0-9]$")
_FORBIDDEN_PREFIXES = {"BS", "BM", "GG", "GB", "GH", "KY", "VG"}

CUSTOM_PREFIX = "algoseek-secid-"


def figi_check_digit(first11: str) -> int:
    """Luhn-style check digit over the first 11 characters (A=10 … Z=35)."""
    total = 0
    for pos, char in enumerate(first11):
        value = int(char) if char.isdigit() else ord(char) - ord("A") + 10
        if pos % 2 == 1:
            value *= 2
        total += sum(int(d) for d in str(value))
    return (10 - total % 10) % 10


def figi_problem(token: str) -> str | None:
    """Why ``token`` is not a valid FIGI, or ``None`` when it is one."""
    if len(token) != 12:
        return f"length {len(token)}, expected 12"
    if not _FIGI.match(token):
        return "bad characters (expected 2 letters, 'G', 8 digits/consonants, check digit)"
    if token[:2] in _FORBIDDEN_PREFIXES:
        return f"prefix {token[:2]} is not allowed"
    if figi_check_digit(token[:11]) != int(token[11]):
        return f"check digit {token[11]} is wrong (expected {figi_check_digit(token[:11])})"
    return None


def is_valid_figi(token: str) -> bool:
    return figi_problem(token) is None


def custom_identifier(secid: int) -> str:
    """The unique_identifier of the custom asset that stands for a SecId without a valid FIGI."""
    return f"{CUSTOM_PREFIX}{secid}"
