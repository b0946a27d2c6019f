"""E.164 for whole columns: the same rules as :func:`notibot.adapters.phone.parser.to_e164`,
applied to a whole column (pandas Series or Arrow array) without a Python call per value where
that is provably the same.

phonenumbers costs about 30 microseconds a number, 30 s for a million. Most numbers in a
customer file are written either as ``+<country code><national number>`` or as
``<national prefix><national number>`` (``0912345678``), with spaces, dots, dashes and
parentheses between the digits. For those two shapes the library's verdict (``parse``,
``is_possible_number_with_reason``, the general pattern) reduces to checking the national
number's length against the region's ``general_desc.possible_length`` and
``possible_length_local_only`` (``phonenumberutil._test_number_length``) and matching
``general_desc.national_number_pattern``, which pyarrow compute kernels do for a whole column at
once. Every other value (other countries, ``84...`` without a plus, letters, extensions, ``00``
international prefixes, tabs and other whitespace the library does not take as punctuation,
regions whose national prefix rules need a transform) goes through :func:`to_e164` itself, once
per distinct value.
``tests/unit/adapters/test_phone_vectorised.py`` checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata

from notibot.adapters.phone.parser import to_e164

try:  # the regular expression parser of the re module, to read a pattern's first characters
    from re import _constants, _parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a Python without them: never skip the check
    _constants = _parser = None

_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
               "uan", "voicemail", "fixed_line", "mobile")
# Explicit ASCII classes (RE2 in pyarrow). Only punctuation phonenumbers itself strips
# (_VALID_PUNCTUATION): a space, never a tab, which makes the library refuse the number.
_SEPARATORS = r"[ ().\-]"
_SIMPLE_SHAPE = r"\+?[0-9 ().\-]+"


@dataclass(frozen=True, slots=True)
class _RegionRules:
    country_code: str
    national_prefix: str | None
    general_pattern: str
    lengths: tuple[int, ...]
    local_only: tuple[int, ...]
    #: whether the general pattern can match a number that starts with the national prefix
    prefix_viable: bool = True


@lru_cache(maxsize=64)
def _rules(region: str) -> _RegionRules | None:
    """The metadata the fast path needs, or None when the region does not qualify (unknown
    region, country code shared by several regions)."""
    meta = PhoneMetadata.metadata_for_region(region.upper())
    if meta is None or meta.general_desc is None:
        return None
    if len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code, ())) != 1:
        return None
    prefix = meta.national_prefix
    if meta.national_prefix_transform_rule or (meta.national_prefix_for_parsing or None) != (
        prefix or None
    ):
        prefix = None  # parsing rules richer than "strip this prefix": leave it to the library
    general = meta.general_desc
    if not general.possible_length or general.possible_length[0] == -1:
        return None
    pattern = general.national_number_pattern
    if not pattern:
        return None
    if not re.search(r"\[[^\]]*\\d", pattern):  # \d outside classes: same as [0-9] on ASCII
        pattern = pattern.replace("\\d", "[0-9]")
    return _RegionRules(str(meta.country_code), prefix, pattern,
                        tuple(general.possible_length),
                        tuple(general.possible_length_local_only or ()),
                        prefix_viable=not prefix or _may_start_with(pattern, prefix[0]))


def _may_start_with(pattern: str, char: str) -> bool:
    """Whether a string matched by ``pattern`` may start with ``char``: False only when the
    pattern's possible first characters, read from its parse tree, provably exclude it."""
    if _parser is None:  # pragma: no cover
        return True
    try:
        parsed = _parser.parse(pattern)
        if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
            return True
        firsts, nullable = _first_chars(parsed)
    except (re.error, _Unknown):
        return True
    return nullable or ord(char) in firsts


class _Unknown(Exception):
    """A pattern construct :func:`_first_chars` does not reason about."""


def _first_chars(items: list) -> tuple[set[int], bool]:
    """The code points a match of the sequence ``items`` may start with, and whether it may
    match the empty string.

    Raises:
        _Unknown: a construct other than literals, ASCII classes, groups, alternation and
            repetition.
    """
    firsts: set[int] = set()
    for op, arg in items:
        if op is _constants.LITERAL:
            chars, nullable = {arg}, False
        elif op is _constants.IN:
            chars, nullable = set(), False
            for kind, value in arg:
                if kind is _constants.LITERAL:
                    chars.add(value)
                elif kind is _constants.RANGE:
                    chars.update(range(value[0], value[1] + 1))
                else:  # negation, categories such as \d (which match non-ASCII digits)
                    raise _Unknown
        elif op is _constants.SUBPATTERN:
            chars, nullable = _first_chars(arg[-1])
        elif op is _constants.BRANCH:
            chars, nullable = set(), False
            for branch in arg[1]:
                found, empty = _first_chars(branch)
                chars |= found
                nullable = nullable or empty
        elif op in (_constants.MAX_REPEAT, _constants.MIN_REPEAT):
            low, _high, item = arg
            chars, nullable = _first_chars(item)
            nullable = nullable or low == 0
        else:
            raise _Unknown
        firsts |= chars
        if not nullable:
            return firsts, False
    return firsts, True


def _fullmatch(values: pa.Array, pattern: str) -> pa.Array:
    """Whole-value regex match (RE2), like ``Series.str.fullmatch`` on Arrow strings."""
    return pc.match_substring_regex(values, f"^(?:{pattern})$")


def e164_array(
    values: pa.Array | pa.ChunkedArray, default_region: str, *, trimmed: bool = False
) -> pa.Array:
    """Return E.164 strings for an Arrow string array, null where a value is null, blank or not
    a valid number. Same result as :func:`to_e164` value by value (on the value with its
    surrounding whitespace trimmed, which does not change the library's verdict).

    Parameters:
        values: phone numbers as people write them (Arrow ``string`` or ``large_string``).
        default_region: ISO 3166-1 alpha-2 region for numbers without a country code.
        trimmed: the values have no surrounding whitespace (``utf8_trim_whitespace``).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    text = pc.fill_null(values, "")
    if not trimmed:
        text = pc.utf8_trim_whitespace(text)
    n = len(text)
    present = pc.not_equal(text, "")
    if not pc.any(present).as_py():
        return pa.nulls(n, text.type)
    out = pa.nulls(n, text.type)
    pending = present
    rules = _rules(default_region)
    if rules is not None:
        cc = rules.country_code
        # digits only (the usual case) is a simple shape without separators; the regular
        # expressions run on the other values alone
        simple = pc.ascii_is_decimal(text)
        digits = pc.if_else(simple, text, "")
        other = pc.and_(present, pc.invert(simple))
        if pc.any(other).as_py():
            rest = pc.filter(text, other)
            rest_simple = _fullmatch(rest, _SIMPLE_SHAPE)
            rest_digits = pc.replace_substring_regex(pc.if_else(rest_simple, rest, ""),
                                                     _SEPARATORS, "")
            simple = pc.replace_with_mask(simple, other, rest_simple)
            digits = pc.replace_with_mask(digits, other, rest_digits)
        plus_intl = pc.and_(simple, pc.starts_with(digits, "+" + cc))
        nsn = pc.utf8_slice_codeunits(pc.if_else(plus_intl, digits, ""), len(cc) + 1)
        national = pa.repeat(False, n)
        if rules.national_prefix:
            national = pc.and_(pc.and_(simple, pc.starts_with(digits, rules.national_prefix)),
                               pc.invert(pc.starts_with(digits, cc)))
            nsn = pc.if_else(plus_intl, nsn, pc.utf8_slice_codeunits(
                pc.if_else(national, digits, ""), len(rules.national_prefix)))
        length = pc.utf8_length(nsn)
        # the library keeps a national number it would cut too short, and keeps the prefix
        # when the whole number is itself viable: such values take the slow path
        # nsn is all digits here, so "starts with 1-9" is "does not start with 0"
        shaped = pc.and_(pc.and_(pc.or_(plus_intl, national),
                                 pc.invert(pc.starts_with(nsn, "0"))),
                         pc.greater_equal(length, max(rules.lengths[0], 1)))
        if rules.national_prefix and rules.prefix_viable:
            viable = _fullmatch(pc.if_else(national, digits, ""), rules.general_pattern)
            shaped = pc.and_(shaped, pc.invert(pc.and_(national, viable)))
        possible = pc.and_(pc.and_(shaped, pc.is_in(length, pa.array(rules.lengths))),
                           pc.invert(pc.is_in(length, pa.array(rules.local_only,
                                                               type=pa.int64()))))
        general = _fullmatch(pc.if_else(possible, nsn, ""), rules.general_pattern)
        possible = pc.and_(possible, general)
        joined = pc.binary_join_element_wise(pa.scalar("+" + cc, type=text.type), nsn,
                                             pa.scalar("", type=text.type))
        out = pc.if_else(possible, joined, out)
        # shaped but impossible is impossible for the library too
        pending = pc.and_(present, pc.invert(shaped))
    if pc.any(pending).as_py():
        rest = pc.filter(text, pending)
        uniques = pc.unique(rest)
        verdicts = pa.array([to_e164(raw, default_region) for raw in uniques.to_pylist()],
                            type=text.type)
        found = pc.take(verdicts, pc.index_in(rest, value_set=uniques))
        out = pc.replace_with_mask(out, pending, found)
    return out


def e164_column(values: pd.Series, default_region: str) -> pd.Series:
    """Return E.164 strings for ``values`` (str or missing), ``None`` where a value is blank
    or not a valid number. Same result as :func:`to_e164` value by value.

    Parameters:
        values: phone numbers as people write them; NaN/None/"" stay None.
        default_region: ISO 3166-1 alpha-2 region for numbers without a country code.
    """
    text = values.fillna("").astype(str)
    result = e164_array(pa.array(text, type=pa.large_string()), default_region)
    return pd.Series(result.to_pylist(), index=values.index, dtype=object)
