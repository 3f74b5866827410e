"""Validated pattern recognisers: regular expressions plus checksums (Luhn, mod-97, national-ID check digits)."""
