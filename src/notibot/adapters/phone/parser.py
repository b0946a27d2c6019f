"""Phone number parsing: one implementation shared by the API and the CSV reader."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import PhoneMetadata

from notibot.application.ports import PhoneNumberParser
from notibot.domain import InvalidInput

_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def to_e164(raw: str, default_region: str) -> str | None:
    """Return the E.164 form of ``raw`` (``"0912 345 678"``, region ``VN`` ->
    ``"+84912345678"``), or None when it is not a well-formed number.

    Well-formed means, in libphonenumber's metadata for the number's country: a possible
    length (``isPossibleNumber``: ``123`` is refused, so is a 7-digit US number that needs an
    area code) and a match of the country's general number pattern (``generalDesc``: a US
    area code cannot start with 0 or 1, ``+84 000 000 000`` is no Vietnamese number). The
    narrower allocation check ``isValidNumber`` (is this range assigned to a carrier today?)
    is deliberately not applied: allocations change with every metadata release, and a
    customer's number written in a well-formed way is their data, not ours to drop.

    Synchronous and exception-free, so the CSV reader can apply it to whole columns.
    ``default_region`` is an ISO 3166-1 alpha-2 code used when the number has no country code.
    """
    try:
        number = phonenumbers.parse(raw, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != _POSSIBLE:
        return None
    if not _matches_general_pattern(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _matches_general_pattern(number: phonenumbers.PhoneNumber) -> bool:
    region = phonenumbers.region_code_for_country_code(number.country_code)
    meta = PhoneMetadata.metadata_for_region_or_calling_code(number.country_code, region)
    if meta is None or meta.general_desc is None or not meta.general_desc.national_number_pattern:
        return False
    pattern = meta.general_desc.national_number_pattern
    return re.fullmatch(pattern, phonenumbers.national_significant_number(number)) is not None


class PhonenumbersParser(PhoneNumberParser):
    """:class:`~notibot.application.ports.PhoneNumberParser` on :func:`to_e164`."""

    async def to_e164(self, raw: str, default_region: str) -> str:
        e164 = to_e164(raw, default_region)
        if e164 is None:
            raise InvalidInput(
                f"{raw!r} is not a well-formed phone number (default region {default_region})",
                code="invalid_phone", details={"field": "phone"},
            )
        return e164
