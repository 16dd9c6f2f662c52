"""The meaning of the values in the output contract: the kinds a field declares, and the check of each kind.

An outputs file is untrusted input (it may be edited, truncated or produced by something else), and its values go
into files (XML, JSON, PowerShell, Markdown), onto the terminal and, for URLs, into Intrexx's and MSAL's HTTP
requests. Every field of the contract's records (components/contract.py) declares its kind with
`typing.Annotated`, e.g. `tenant_id: Annotated[str, Kind.GUID]`; the contract refuses a record with a field that
declares none, and reads each value through the check of its kind, so a new field cannot go unchecked. A failed
check raises `ContractError` naming the field.

A leaf of the contract: it imports no other module of the contract (contract.py imports this one).
"""

from __future__ import annotations

import json
import re
from datetime import date
from enum import Enum

from .facts import GUID_EXAMPLE, LOOPBACK_HOSTS, is_guid
from .text import describe_characters, unsafe_characters
from .urls import url_problems


class ContractError(ValueError):
    """An outputs document does not have the contract's shape; `path` names the field (`portals.hr.clientId`)."""

    def __init__(self, path: str, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


class Kind(Enum):
    """What a field of the contract holds. The value is the phrase its error messages use."""

    HTTPS_URL = "an https URL"
    HTTPS_ORIGIN = "an https origin such as https://login.microsoftonline.com"
    PORTAL_URL = "an https URL (http only on localhost or 127.0.0.1)"  # a portal's own URLs, as the config allows
    GUID = f"a GUID such as {GUID_EXAMPLE}"
    PORTAL_NAME = "a portal name"
    TEXT = "one line of text"
    DATE = "an ISO 8601 date or timestamp"
    ENUM = "one of a closed list of words"
    FLAG = "true or false"
    COUNT = "a whole number"
    RECORD = "an object"


# The Python type each kind is held in; str for the kinds not listed. ENUM and RECORD name a kind of type (a StrEnum,
# a record of the contract), which the contract checks.
KIND_TYPES: dict[Kind, type] = {Kind.DATE: date, Kind.FLAG: bool, Kind.COUNT: int}
TEXT_KINDS = frozenset(kind for kind in Kind if kind not in KIND_TYPES and kind not in (Kind.ENUM, Kind.RECORD))

# The configuration's rule for portal names; names also become resource names, output keys and folder names. The
# whole text must match (\Z, not $: `$` also matches before a final line break, and "hr\n" is no name).
PORTAL_NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,39}\Z")
PORTAL_NAME_RULE = "a lower-case letter, then at most 39 lower-case letters, digits or '-'"
# RFC 3339's date, or its timestamp (ASCII digits only: `\d` would also take other scripts' digits).
_DATE_OR_TIMESTAMP = re.compile(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2}))?\Z"
)


# A lone surrogate (JSON's "\ud800", YAML's "\ud800") is no character: it cannot be written as UTF-8, so a file,
# a terminal or Pulumi's engine would fail on it later. Refused where text comes in.
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogates(text: str) -> list[str]:
    """The distinct lone surrogates in `text` (a str that is no valid Unicode text), in order of appearance."""
    return list(dict.fromkeys(_SURROGATE.findall(text)))


def is_portal_name(value: object) -> bool:
    return isinstance(value, str) and PORTAL_NAME_PATTERN.fullmatch(value) is not None


def check_text(kind: Kind, value: str, path: str) -> str:
    """`value` when it is what a string field of `kind` must hold; ContractError naming `path` when not."""
    bad = unsafe_characters(value)
    if bad:
        raise ContractError(path, f"must not contain control characters ({describe_characters(bad)})")
    surrogates = lone_surrogates(value)
    if surrogates:
        raise ContractError(path, f"must be Unicode text, not lone surrogates ({describe_characters(surrogates)})")
    if kind is Kind.GUID and not is_guid(value):
        raise ContractError(path, f"must be {kind.value}, got {describe_value(value)}")
    if kind is Kind.PORTAL_NAME and not is_portal_name(value):
        raise ContractError(path, f"must be {PORTAL_NAME_RULE}, got {describe_value(value)}")
    if kind in _URL_RULES:
        http_hosts, allow_path = _URL_RULES[kind]
        reasons = url_problems(value, http_hosts=http_hosts, allow_path=allow_path, example=kind.value)
        if reasons:
            raise ContractError(path, f"{reasons[0]}, got {describe_value(value, 80)}")
    return value


_URL_RULES: dict[Kind, tuple[tuple[str, ...], bool]] = {  # kind -> (hosts that may use http, path allowed)
    Kind.HTTPS_URL: ((), True),
    Kind.HTTPS_ORIGIN: ((), False),
    Kind.PORTAL_URL: (LOOPBACK_HOSTS, True),
}


def check_secret(value: str, path: str) -> str:
    """A client secret that reaches om.cfg and the token endpoint unchanged. The message names code points only,
    never the secret: XML attribute values turn tabs and line breaks into spaces (om.cfg), a terminal or a CI log
    would act on control characters, and a lone surrogate cannot be written at all, so a secret holding any of them
    is refused here, before it is used."""
    bad = unsafe_characters(value) + lone_surrogates(value)
    if bad:
        raise ContractError(path, f"must not contain control characters ({describe_characters(bad)})")
    return value


# The dates in the outputs are ones the program wrote: it plans from 2024 to 2999 (components/today.py), adding at
# most a secret's lifetime; status, the calendar and the metrics add months and days to them. A date outside these
# years is no date of the program's, and at the calendar's end (9999-12-31) that arithmetic would fail.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(3999, 12, 31)


def read_date(value: object, path: str) -> date:
    """The calendar day of an RFC 3339 date or timestamp (how the outputs write dates), from 1970 to 3999."""
    if not isinstance(value, str) or not _DATE_OR_TIMESTAMP.fullmatch(value):
        raise ContractError(path, f"must be {Kind.DATE.value}, got {describe_value(value)}")
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise ContractError(path, f"is not a calendar date: {describe_value(value)}") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ContractError(path, f"must be a date from {EARLIEST_DATE} to {LATEST_DATE}, got {describe_value(value)}")
    return day


def json_type(value: object) -> str:
    """The JSON type of a value, in words: "an object", "a list", ..."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def describe_value(value: object, limit: int = 60) -> str:
    """A short, printable picture of a value from outside (the stack file or an outputs file), whatever its type
    (a YAML tag can make a date, bytes or a set) or depth."""
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (dict, list)):
        try:
            text = json.dumps(value, ensure_ascii=True, default=lambda item: type(item).__name__)
        except (RecursionError, ValueError):
            text = f"a {type(value).__name__} nested too deeply"
    elif value is None or isinstance(value, (bool, int, float)):
        try:
            text = json.dumps(value)
        except ValueError:  # an integer of more digits than Python converts to text
            text = "a number too long to show"
    else:
        text = f"a YAML {type(value).__name__} value"
    return text if len(text) <= limit else text[: limit - 3] + "..."
