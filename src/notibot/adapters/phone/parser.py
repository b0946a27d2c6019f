"""Phone number parsing: one implementation shared by the API and the CSV reader."""

from __future__ import annotations

import phonenumbers

from notibot.application.ports import PhoneNumberParser
from notibot.domain import InvalidInput

_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def to_e164(raw: str, default_region: str) -> str | None:
    """Return the E.164 form of ``raw`` (``"0912 345 678"``, region ``VN`` ->
    ``"+84912345678"``), or None when it is not a possible number.

    "Possible" is libphonenumber's ``isPossibleNumber``: a known country code and a national
    number of a length the region uses (``123`` is refused, so is a 7-digit US number that
    needs an area code). The allocation check ``isValidNumber`` is deliberately not applied:
    allocated ranges change with every metadata release, and a customer's number written in
    a well-formed way is their data, not ours to drop.

    Synchronous and exception-free, so the CSV reader can apply it to whole columns.
    ``default_region`` is an ISO 3166-1 alpha-2 code used when the number has no country code.
    """
    try:
        number = phonenumbers.parse(raw, default_region.upper())
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != _POSSIBLE:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class PhonenumbersParser(PhoneNumberParser):
    """:class:`~notibot.application.ports.PhoneNumberParser` on :func:`to_e164`."""

    async def to_e164(self, raw: str, default_region: str) -> str:
        e164 = to_e164(raw, default_region)
        if e164 is None:
            raise InvalidInput(
                f"{raw!r} is not a possible phone number (default region {default_region})",
                code="invalid_phone", details={"field": "phone"},
            )
        return e164
