"""E.164 for whole columns: the same rules as :func:`notibot.adapters.phone.parser.to_e164`,
applied to a pandas Series without a Python call per value where that is provably the same.

phonenumbers costs about 30 microseconds a number, 30 s for a million. Most numbers in a
customer file are written either as ``+<country code><national number>`` or as
``<national prefix><national number>`` (``0912345678``). For those two shapes the library's
verdict (``parse``, ``is_possible_number_with_reason``, the general pattern) reduces to checking
the national number's length against the region's ``general_desc.possible_length`` and
``possible_length_local_only`` (``phonenumberutil._test_number_length``) and matching
``general_desc.national_number_pattern``, which pandas does for a whole column at once. Every
other value (other countries, ``84...`` without a plus, letters, extensions, ``00``
international prefixes, regions whose national prefix rules need a transform) goes through
:func:`to_e164` itself, once per distinct value.
``tests/unit/adapters/test_phone_vectorised.py`` checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
import phonenumbers
from phonenumbers import PhoneMetadata

from notibot.adapters.phone.parser import to_e164

_TYPE_DESCS = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager",
               "uan", "voicemail", "fixed_line", "mobile")
# explicit ASCII classes: pandas runs them in pyarrow (RE2); \s or \d would fall back to re
_SEPARATORS = r"[ \t().\-]"
_SIMPLE_SHAPE = r"\+?[0-9 \t().\-]+"


@dataclass(frozen=True, slots=True)
class _RegionRules:
    country_code: str
    national_prefix: str | None
    general_pattern: str
    lengths: tuple[int, ...]
    local_only: tuple[int, ...]


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
    if not re.search(r"\[[^\]]*\\d", pattern):  # \d outside classes: same as [0-9] on ASCII
        pattern = pattern.replace("\\d", "[0-9]")
    return _RegionRules(str(meta.country_code), prefix, pattern,
                        tuple(general.possible_length),
                        tuple(general.possible_length_local_only or ()))


def e164_column(values: pd.Series, default_region: str) -> pd.Series:
    """Return E.164 strings for ``values`` (str or missing), ``None`` where a value is blank
    or not a valid number. Same result as :func:`to_e164` value by value.

    Parameters:
        values: phone numbers as people write them; NaN/None/"" stay None.
        default_region: ISO 3166-1 alpha-2 region for numbers without a country code.
    """
    out = pd.Series(None, index=values.index, dtype=object)
    text = values.fillna("").astype(str).str.strip()
    present = text != ""
    if not present.any():
        return out
    pending = present.copy()
    rules = _rules(default_region)
    if rules is not None:
        simple = present & text.str.fullmatch(_SIMPLE_SHAPE).fillna(False).astype(bool)
        digits = text.where(simple, "").str.replace(_SEPARATORS, "", regex=True)
        plus_intl = simple & digits.str.startswith("+" + rules.country_code)
        nsn = digits.where(plus_intl, "").str.slice(len(rules.country_code) + 1)
        national = pd.Series(False, index=values.index)
        if rules.national_prefix:
            national = (simple & digits.str.startswith(rules.national_prefix)
                        & ~digits.str.startswith(rules.country_code))
            nsn = nsn.where(plus_intl, digits.where(national, "").str.slice(
                len(rules.national_prefix)))
        length = nsn.str.len()
        # the library keeps a national number it would cut too short, and keeps the prefix
        # when the whole number is itself viable: such values take the slow path
        shaped = ((plus_intl | national) & nsn.str.match(r"[1-9]").fillna(False).astype(bool)
                  & (length >= rules.lengths[0]))
        if rules.national_prefix:
            viable = digits.where(national, "").str.fullmatch(rules.general_pattern)
            shaped &= ~(national & viable.fillna(False).astype(bool))
        possible = (shaped & length.isin(rules.lengths) & ~length.isin(rules.local_only))
        general = nsn.where(possible, "").str.fullmatch(rules.general_pattern)
        possible &= general.fillna(False).astype(bool)
        out[possible] = "+" + rules.country_code + nsn[possible]
        pending &= ~shaped  # shaped but impossible is impossible for the library too
    if pending.any():
        rest = text[pending]
        verdicts = {raw: to_e164(raw, default_region) for raw in rest.unique()}
        out[pending] = rest.map(verdicts)
    return out.astype(object).where(out.notna(), None)
