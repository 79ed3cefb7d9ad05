"""Reference code lists: ISO 3166-1 alpha-2 countries and ISO 4217 currencies.

Data only. The lists are closed: a code not here is refused, never guessed.

``COUNTRIES`` holds the 249 officially assigned ISO 3166-1 alpha-2 codes (no
exceptionally or transitionally reserved codes such as ``UK``, ``EU`` or ``AN``,
and no user-assigned codes such as ``XK``).

``CURRENCY_MINOR_UNITS`` maps every code of ISO 4217 list A.1 ("current currency &
funds") whose minor unit is a number to that number of fraction digits. Codes
whose minor unit is "N.A." (gold ``XAU``, silver ``XAG``, platinum ``XPT``,
palladium ``XPD``, the European bond units ``XBA`` to ``XBD``, ``XDR``, ``XSU``,
``XUA``, the test code ``XTS`` and "no currency" ``XXX``) are left out: they are not
money an amount can be written in. Withdrawn codes (``HRK``, ``SLL``, ``ZWL``,
``CUC``, ``ANG``, ``MRO``, ``STD``, ``VEF``, ``BYR``, ...) are left out too.

Checked against the list A.1 published 2026-01-01.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

_COUNTRY_TABLE: Final = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET
    FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT
    JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ
    LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ
    OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA
    RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
    UA UG UM US UY UZ
    VA VC VE VG VI VN VU
    WF WS
    YE YT
    ZA ZM ZW
"""

COUNTRIES: Final[frozenset[str]] = frozenset(_COUNTRY_TABLE.split())
"""The 249 officially assigned ISO 3166-1 alpha-2 codes."""

_MINOR_UNITS: Final[dict[str, int]] = {
    # zero fraction digits
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three fraction digits
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four fraction digits (units of account)
    "CLF": 4, "UYW": 4,
    # two fraction digits
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "AOA": 2, "ARS": 2, "AUD": 2,
    "AWG": 2, "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BMD": 2, "BND": 2, "BOB": 2,
    "BOV": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2,
    "CDF": 2, "CHE": 2, "CHF": 2, "CHW": 2, "CNY": 2, "COP": 2, "COU": 2, "CRC": 2,
    "CUP": 2, "CVE": 2, "CZK": 2, "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2,
    "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2, "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2,
    "GMD": 2, "GTQ": 2, "GYD": 2, "HKD": 2, "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "IRR": 2, "JMD": 2, "KES": 2, "KGS": 2, "KHR": 2, "KPW": 2,
    "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "MAD": 2,
    "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MXV": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2,
    "NIO": 2, "NOK": 2, "NPR": 2, "NZD": 2, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2,
    "PKR": 2, "PLN": 2, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "SAR": 2, "SBD": 2,
    "SCR": 2, "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2,
    "SSP": 2, "STN": 2, "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2,
    "TOP": 2, "TRY": 2, "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "USD": 2, "USN": 2,
    "UYU": 2, "UZS": 2, "VED": 2, "VES": 2, "WST": 2, "XAD": 2, "XCD": 2, "XCG": 2, "YER": 2,
    "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

CURRENCY_MINOR_UNITS: Final[Mapping[str, int]] = MappingProxyType(_MINOR_UNITS)
"""ISO 4217 code -> number of fraction digits an amount in it may carry."""

CURRENCIES: Final[frozenset[str]] = frozenset(_MINOR_UNITS)
