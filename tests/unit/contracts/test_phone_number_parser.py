"""Contract of the PhoneNumberParser port: every adapter must pass these tests.

Add an adapter by appending a zero-argument factory returning a parser to ``ADAPTERS``.
"""

from __future__ import annotations

import pytest

from notibot.adapters.phone import PhonenumbersParser, to_e164
from notibot.application.ports import PhoneNumberParser
from notibot.domain import InvalidInput

ADAPTERS = [pytest.param(PhonenumbersParser, id="phonenumbers")]


@pytest.fixture(params=ADAPTERS)
def parser(request: pytest.FixtureRequest) -> PhoneNumberParser:
    return request.param()


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("0912 345 678", "VN", "+84912345678"),
        ("0912345678", "VN", "+84912345678"),
        ("(+84) 91-234-5678", "VN", "+84912345678"),
        ("+84 912345678", "VN", "+84912345678"),
        ("+84912345678", "VN", "+84912345678"),
        # A national number that starts with the country code is read as the full
        # international number by libphonenumber.
        ("84912345678", "VN", "+84912345678"),
        ("  0912.345.678  ", "VN", "+84912345678"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("650-253-0000", "us", "+16502530000"),
        ("+1 650 253 0000", "VN", "+16502530000"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "VN", "+442079460958"),
    ],
)
async def test_written_numbers_become_e164(
    parser: PhoneNumberParser, raw: str, region: str, expected: str
) -> None:
    assert await parser.to_e164(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("", "VN"),
        ("abc", "VN"),
        ("12345", "VN"),
        ("091234567890123", "VN"),  # too long for Vietnam
        ("+84 12 345", "VN"),  # too short
        ("253-0000", "US"),  # a US number needs its area code
        ("84912345678", "US"),  # 11 digits without the US country code
        ("+999 1234567", "VN"),  # no such country code
        ("0012345678", "VN"),
        ("0912345678", "ZZ"),  # unknown region
    ],
)
async def test_invalid_numbers_raise_invalid_phone(
    parser: PhoneNumberParser, raw: str, region: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        await parser.to_e164(raw, region)

    assert exc.value.code == "invalid_phone"
    assert exc.value.details == {"field": "phone"}


def test_the_synchronous_function_returns_none_instead_of_raising() -> None:
    assert to_e164("0912 345 678", "VN") == "+84912345678"
    assert to_e164("not a number", "VN") is None
