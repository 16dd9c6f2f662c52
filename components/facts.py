"""Facts and rules every part of intrexx-exchange shares: the program, the post-deploy step and the policy pack.

A leaf: it imports only the standard library and PyYAML, so that the policy pack, which runs in a venv of its own
without the project's modules on its path, can load this one file by its path. Nothing here prints, raises on bad
input, or imports another module of the project.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")

# GUIDs ------------------------------------------------------------------------------------------------------------
#
# Entra ID writes every id (tenant, application, object, key, permission) as 8-4-4-4-12 hexadecimal digits
# (learn.microsoft.com/graph/api/resources/application: "id String ... Key ... Read-only", a GUID as text). uuid.UUID
# also reads braces, a `urn:uuid:` prefix, 32 digits without hyphens and surrounding white space: none of those is
# an Entra id, and each breaks a later stage that puts the text into a URL, a filter or a script.
GUID_PATTERN = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The example messages show: a real-looking id, never the nil GUID, which is no id Entra gives out (RFC 9562, 5.9:
# "all 128 bits set to zero") and which a configuration holds only when someone copied a placeholder.
GUID_EXAMPLE = "0b7f6a2e-4c1d-4e8f-9a3b-2d5c6e7f8a9b"
NIL_GUID = "00000000-0000-0000-0000-000000000000"


def is_guid(value: object) -> bool:
    """True for the canonical text form of a GUID only (either letter case); nothing around it."""
    return isinstance(value, str) and GUID_PATTERN.fullmatch(value) is not None


def is_object_id(value: object) -> bool:
    """A GUID that can name an object in Entra: canonical, and not the nil GUID (a placeholder)."""
    return is_guid(value) and value != NIL_GUID


def same_guid(left: object, right: object) -> bool:
    """Two canonical GUIDs naming the same id (GUIDs compare without regard to letter case)."""
    return is_guid(left) and is_guid(right) and str(left).lower() == str(right).lower()


# Hosts ------------------------------------------------------------------------------------------------------------
#
# learn.microsoft.com/entra/identity-platform/reply-url: redirect URIs use https, except http on the loopback
# address ("localhost", 127.0.0.1). The same two hosts are the only ones a portal's baseUrl may reach over http.
LOOPBACK_HOSTS: tuple[str, ...] = ("localhost", "127.0.0.1")

# Client secrets ---------------------------------------------------------------------------------------------------
#
# One rule for how long a client secret lives, shared by the program (components/config.py accepts
# secretRotationDays within these limits, components/rotation.py makes the secrets) and the policy pack
# (policy/entra_guardrails.py judges every ApplicationPassword with `secret_lifetime` and `lifetime_allowed`), so
# that whatever the program accepts passes the pack on every day, rotation day included.
#
# The pack's default limit is CISA ScubaGear's baseline MS.AAD.5.6v1: "Application password lifetime SHOULD be
# restricted to 180 days or less" (cisagov/ScubaGear PowerShell/ScubaGear/baselines/aad.md). Entra's own ceiling for
# a password credential is two years (learn.microsoft.com/entra/identity-platform/howto-create-service-principal-portal:
# "24 months"); the pack's maxSecretLifetimeDays may be set up to it.
#
# Each of the two secret slots ends 2 x secretRotationDays after the first day (00:00 UTC) of the period it is made
# in (components/rotation.py). The pack measures from the moment it runs (or an earlier startDate), and the program
# plans for the UTC date of that moment, so the longest lifetime the pack can see is on the rotation day at 00:00
# UTC: exactly 2 x secretRotationDays. The program therefore accepts at most half the pack's default limit.
DEFAULT_MAX_SECRET_DAYS = 180
ENTRA_MAX_SECRET_DAYS = 730
MIN_ROTATION_DAYS = 7
MAX_ROTATION_DAYS = DEFAULT_MAX_SECRET_DAYS // 2  # 90: 2 x 90 = 180


def secret_lifetime_days(rotation_days: int) -> int:
    """How long each secret made with `rotation_days` lives, from the first day of the period it is made in."""
    return 2 * rotation_days


def largest_rotation_days(max_lifetime: timedelta) -> int:
    """The largest secretRotationDays the program accepts whose secrets a lifetime limit allows (0 when none
    does)."""
    return max(0, min(MAX_ROTATION_DAYS, max_lifetime // timedelta(days=2)))


def rotation_days_advice(max_lifetime: timedelta) -> str:
    """What an intrexx-exchange user does about a lifetime limit: the secretRotationDays that fit it."""
    fits = largest_rotation_days(max_lifetime)
    if fits < MIN_ROTATION_DAYS:
        shortest = secret_lifetime_days(MIN_ROTATION_DAYS)
        return f"no secretRotationDays fits: the shortest, {MIN_ROTATION_DAYS}, makes secrets that live {shortest} days"
    return f"set secretRotationDays to {fits} or less (each secret lives 2 x secretRotationDays days)"


def secret_lifetime(end: datetime, now: datetime, start: datetime | None = None) -> timedelta:
    """How long a secret ending at `end` lives, as the policy pack measures it: from `now`, or from its start date
    when that lies in the past (Entra's app management policy counts passwordLifetime from startDateTime). All
    three are timezone-aware; subtracting them never overflows, whatever their years and offsets."""
    return end - (now if start is None else min(now, start))


def lifetime_allowed(lifetime: timedelta, max_days: float) -> bool:
    """The pack's rule: a lifetime of at most `max_days` days (inclusive); `max_days` is 1..ENTRA_MAX_SECRET_DAYS."""
    return lifetime <= timedelta(days=max_days)


assert secret_lifetime_days(MAX_ROTATION_DAYS) <= DEFAULT_MAX_SECRET_DAYS <= ENTRA_MAX_SECRET_DAYS


# Resource applications --------------------------------------------------------------------------------------------


@functools.cache
def catalogue_document() -> dict[str, Any]:
    """catalogue.yaml, parsed once per process (components/catalogue.py builds its records from this). Read with
    libyaml's safe loader where PyYAML has it (the same safe subset, several times faster than the pure-Python
    loader: pyyaml.org/wiki/PyYAMLDocumentation, "LibYAML bindings"), which every command pays at start."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document = yaml.load(CATALOGUE_FILE.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    assert isinstance(document, dict), "catalogue.yaml holds a mapping"
    return document


def resource_app_id(key: str) -> str:
    """The application (client) id of a resource API of the catalogue: "graph" or "exchange"."""
    app_id = catalogue_document()["resources"][key]["appId"]
    assert is_guid(app_id), f"catalogue.yaml: resources.{key}.appId is a GUID"
    return str(app_id)


GRAPH_APP_ID = resource_app_id("graph")
EXCHANGE_ONLINE_APP_ID = resource_app_id("exchange")

# Access tokens ----------------------------------------------------------------------------------------------------


def token_payload(token: str) -> dict[str, Any] | None:
    """The claims of a JWT access token, or None when the token is not a JWT that can be decoded (opaque or
    encrypted): "Tokens that a Microsoft API receives might not always be a JWT that can be decoded"
    (learn.microsoft.com/entra/identity-platform/access-tokens). The signature is not checked: the token came
    straight from the authority over TLS, and only hints are taken from it. A payload that is JSON but not an
    object, or nested too deeply to read, has no claims ({}).

    A JWS in compact serialisation is three base64url parts, header.payload.signature, the header a JSON object
    (RFC 7515 sections 3.1 and 7.1; RFC 7519 section 7.2 steps 1-6); an encrypted token (JWE) has five and is
    opaque here. Decoded with the standard library: PyJWT would do the same, but importing it loads
    `cryptography`, which cost `verify` about a quarter of MSAL's own import time (README "Benchmarks")."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_base64url(parts[0]))
        claims = json.loads(_base64url(parts[1]))
    except RecursionError:
        return {}
    except ValueError:  # binascii.Error, UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        return None
    if not isinstance(header, dict):
        return None
    return claims if isinstance(claims, dict) else {}


def _base64url(part: str) -> bytes:
    """RFC 7515 section 2: base64url without padding; anything outside its alphabet is refused."""
    if not _BASE64URL.fullmatch(part):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


# The offline plan -------------------------------------------------------------------------------------------------
#
# `plan` has no tenant to make secrets in: its outputs carry this text in place of every client secret. apply and
# verify refuse it, so that a plan's outputs never reach a real om.cfg or spend a wait on Entra.
PLACEHOLDER_SECRET = "PLACEHOLDER-run-make-up-for-the-real-secret"


def is_placeholder_secret(value: object) -> bool:
    return value == PLACEHOLDER_SECRET
