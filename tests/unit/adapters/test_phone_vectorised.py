"""E.164 for whole columns: ``e164_column`` must give exactly what ``to_e164`` gives value by
value (None for blank or invalid), whatever shortcuts it takes inside."""

from __future__ import annotations

import random

import pandas as pd
import phonenumbers
import pytest

from notibot.adapters.phone import to_e164
from notibot.adapters.phone.vectorised import e164_column

REGIONS = ["VN", "US", "GB", "DE", "JP", "SG", "FR", "IN", "IT", "BR", "CN", "AU"]
#: Regions whose numbers appear as "foreign" numbers in every region's column.
FOREIGN = ["VN", "US", "GB", "DE", "JP", "SG", "FR", "IN", "IT", "BR", "RU", "MX", "KR", "CH"]
TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE,
         phonenumbers.PhoneNumberType.TOLL_FREE]
FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))
SEPARATORS = [" ", "  ", "-", ".", "(", ")", "/"]
EXTENSIONS = [" ext. 12", " x123", " #45", ";ext=7", " ext 9"]


def expected(value: object, region: str) -> str | None:
    """The per-value rule the column must follow: blank -> None, else ``to_e164``."""
    if value is None or not isinstance(value, str) or not value.strip():
        return None
    return to_e164(value, region)


def base_number(rnd: random.Random, region: str) -> phonenumbers.PhoneNumber:
    for _ in range(20):
        home = region if rnd.random() < 0.7 else rnd.choice(FOREIGN)
        number = phonenumbers.example_number_for_type(home, rnd.choice(TYPES))
        if number is not None:
            return number
    raise AssertionError(f"no example number for {region}")


def digits(rnd: random.Random, count: int) -> str:
    return "".join(str(rnd.randrange(10)) for _ in range(count))


def written(rnd: random.Random, region: str) -> str:
    """One phone number as people write them, valid or not."""
    number = base_number(rnd, region)
    cc = str(number.country_code)
    nsn = phonenumbers.national_significant_number(number)
    if rnd.random() < 0.6:  # other numbers of the same shape
        nsn = "".join(c if rnd.random() < 0.7 else str(rnd.randrange(10)) for c in nsn)
    length_change = rnd.random()
    if length_change < 0.15:  # too short
        nsn = nsn[: max(1, len(nsn) - rnd.randrange(1, 5))]
    elif length_change < 0.3:  # too long
        nsn += digits(rnd, rnd.randrange(1, 5))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = (meta.national_prefix if meta is not None else None) or ""
    shapes = [
        lambda: prefix + nsn,                      # national
        lambda: nsn,                               # national without its prefix
        lambda: "+" + cc + nsn,                    # +cc
        lambda: cc + nsn,                          # cc without the plus
        lambda: "00" + cc + nsn,                   # international 00 prefix
        lambda: f"(+{cc}) {nsn}",                  # parenthesised country code
        lambda: f"+{cc} (0) {nsn}",                # the (0) people insert
        lambda: prefix + nsn + rnd.choice(EXTENSIONS),
        lambda: (prefix + nsn).translate(FULL_WIDTH),
        lambda: ("+" + cc + nsn).translate(FULL_WIDTH),
        lambda: prefix + nsn[:2] + rnd.choice("ABCOlxyz") + nsn[2:],  # letters
        lambda: digits(rnd, rnd.randrange(1, 20)),                    # any digits
        lambda: "+" + digits(rnd, rnd.randrange(1, 18)),
        lambda: "+" + cc + "0" + nsn,
        lambda: rnd.choice(["", "  ", "abc", "n/a", "+", "0", "00", "-", "()"]),
    ]
    text = rnd.choice(shapes)()
    if rnd.random() < 0.5:  # separators
        text = "".join(c + (rnd.choice(SEPARATORS) if rnd.random() < 0.15 else "")
                       for c in text)
    if rnd.random() < 0.15:
        text = " " * rnd.randrange(1, 3) + text + " " * rnd.randrange(0, 3)
    return text


@pytest.mark.parametrize("region", REGIONS)
def test_the_column_equals_to_e164_value_by_value_on_mixed_inputs(region: str) -> None:
    rnd = random.Random(f"e164-{region}")
    values: list[object] = [written(rnd, region) for _ in range(500)]
    values[::97] = [None] * len(values[::97])

    got = e164_column(pd.Series(values, dtype=object), region).tolist()

    want = [expected(v, region) for v in values]
    mismatches = [(v, w, g) for v, w, g in zip(values, want, got, strict=True) if w != g]
    assert mismatches == []
    # the generated mix must exercise both verdicts, or the comparison proves little
    assert sum(w is not None for w in want) >= 50
    assert sum(w is None for w in want) >= 50


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("0912 345 678", "VN", "+84912345678"),
        ("(+84) 91-234-5678", "VN", "+84912345678"),
        ("0912.345.678", "VN", "+84912345678"),
        ("+84912345678", "VN", "+84912345678"),
        ("84912345678", "VN", "+84912345678"),
        ("0084 912 345 678", "VN", "+84912345678"),
        ("0912345678".translate(FULL_WIDTH), "VN", "+84912345678"),  # full-width digits
        ("0327879401", "VN", "+84327879401"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("+84 912 345 678", "US", "+84912345678"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("123", "VN", None),
        ("0912345678", "US", None),
        ("+84 000 000 000", "VN", None),
        ("0912345678901234", "VN", None),
        ("call me", "VN", None),
    ],
)
def test_named_examples(raw: str, region: str, e164: str | None) -> None:
    assert to_e164(raw, region) == e164
    assert e164_column(pd.Series([raw]), region).tolist() == [e164]


@pytest.mark.parametrize(
    "raw",
    [
        "0912\t345678",      # a tab inside a quoted cell
        "+84\t912345678",
        "0912\u00a0345\u00a0678",  # non-breaking spaces (spreadsheets)
        "0912\u2009345678",  # thin space
        "0912\n345678",      # a line break inside a quoted cell
        "\t0912345678 ",
    ],
)
def test_unusual_whitespace_gets_the_same_verdict_as_to_e164(raw: str) -> None:
    assert e164_column(pd.Series([raw]), "VN").tolist() == [to_e164(raw, "VN")]


def test_blank_and_missing_values_are_none_and_the_index_is_kept() -> None:
    values = pd.Series([None, float("nan"), "", "   ", "0912 345 678", "123"],
                       index=[50_000, 50_001, 50_002, 50_003, 50_004, 50_005], dtype=object)

    result = e164_column(values, "VN")

    assert list(result.index) == list(values.index)
    assert result.tolist() == [None, None, None, None, "+84912345678", None]


def test_an_empty_column_gives_an_empty_result() -> None:
    assert e164_column(pd.Series([], dtype=object), "VN").tolist() == []


def test_repeated_values_get_the_same_answer_everywhere_in_the_column() -> None:
    values = ["0912 345 678", "123", "+44 20 7946 0958", "84912345678"] * 250

    result = e164_column(pd.Series(values), "VN").tolist()

    assert result == ["+84912345678", None, "+442079460958", "+84912345678"] * 250


@pytest.mark.parametrize("region", ["vn", "Us"])
def test_the_region_is_case_insensitive_like_to_e164(region: str) -> None:
    values = ["0912 345 678", "(650) 253-0000", "+44 20 7946 0958"]

    assert (e164_column(pd.Series(values), region).tolist()
            == [to_e164(v, region) for v in values])
