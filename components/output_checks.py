"""What the output contract's type check cannot see: the meaning of the strings in a portal's outputs entry.

An outputs file is untrusted input (it may be edited, truncated or produced by something else), and its values go
into files (XML, JSON, PowerShell, Markdown), onto the terminal and, for URLs, into Intrexx's and MSAL's HTTP
requests. `check_portal_document` runs after the type check (`PortalOutput.from_output`) and raises
`ContractError` naming the field: every URL must be an https URL a browser reads as we do (redirect URIs and the
base URL may use http on loopback, as the configuration allows), every id the program writes as a GUID must be
one, and no string may hold control or bidirectional formatting characters.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from .contract import ContractError
from .text import describe_characters, unsafe_characters
from .urls import url_problems

LOOPBACK_HOSTS = ("localhost", "127.0.0.1")  # as components/config.py allows for baseUrl
HTTPS_URL_FIELDS = (
    "authority",
    "tokenEndpoint",
    "authorizeEndpoint",
    "deviceCodeEndpoint",
    "jwksUri",
    "issuer",
    "userInfoEndpoint",
    "resource",
    "graphEndpoint",
    "ewsUrl",
)
ORIGIN_FIELDS = ("authorityHost",)  # https://host[:port], no path
WEB_URL_FIELDS = ("baseUrl", "signInRedirectUri")  # https, or http on loopback
WEB_URL_LIST_FIELDS = ("redirectUris",)
GUID_FIELDS = ("tenantId", "clientId", "applicationObjectId", "servicePrincipalObjectId", "secretKeyId")
PERMISSION_GUID_FIELDS = ("resourceAppId", "id")


def check_portal_document(document: object, path: str) -> None:
    """Raise ContractError for the first value of a type-checked portal entry that means nothing safe."""
    if not isinstance(document, Mapping):
        raise ContractError(path, "must be an object")
    _check_text(document, path)
    for key in HTTPS_URL_FIELDS:
        _check_url(document, key, path)
    for key in ORIGIN_FIELDS:
        _check_url(document, key, path, allow_path=False)
    for key in WEB_URL_FIELDS:
        _check_url(document, key, path, http_hosts=LOOPBACK_HOSTS)
    for key in WEB_URL_LIST_FIELDS:
        for index, value in enumerate(_list(document.get(key))):
            _check_url_value(value, f"{path}.{key}[{index}]", http_hosts=LOOPBACK_HOSTS)
    for key in GUID_FIELDS:
        _check_guid(document.get(key), f"{path}.{key}")
    for index, permission in enumerate(_list(document.get("permissions"))):
        if isinstance(permission, Mapping):
            for key in PERMISSION_GUID_FIELDS:
                _check_guid(permission.get(key), f"{path}.permissions[{index}].{key}")
    scope = document.get("mailboxScope")
    if isinstance(scope, Mapping) and scope.get("groupId") is not None:
        _check_guid(scope.get("groupId"), f"{path}.mailboxScope.groupId")


def _check_text(value: object, path: str) -> None:
    if isinstance(value, str):
        bad = unsafe_characters(value)
        if bad:
            raise ContractError(path, f"must not contain control characters ({describe_characters(bad)})")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_text(item, f"{path}[{index}]")


def _check_url(
    document: Mapping[str, object], key: str, path: str, http_hosts: tuple[str, ...] = (), allow_path: bool = True
) -> None:
    value = document.get(key)
    if value is not None:
        _check_url_value(value, f"{path}.{key}", http_hosts=http_hosts, allow_path=allow_path)


def _check_url_value(value: object, path: str, http_hosts: tuple[str, ...] = (), allow_path: bool = True) -> None:
    example = "an https origin such as https://login.microsoftonline.com" if not allow_path else "an https URL"
    reasons = url_problems(str(value), http_hosts=http_hosts, allow_path=allow_path, example=example)
    if reasons:
        raise ContractError(path, f"{reasons[0]}, got {str(value)[:80]!r}")


def _check_guid(value: object, path: str) -> None:
    if value is None:
        return
    text = str(value)
    try:
        valid = len(text) == 36 and str(uuid.UUID(text)) == text.lower()
    except ValueError:
        valid = False
    if not valid:
        raise ContractError(path, f"must be a GUID such as 00000000-0000-0000-0000-000000000000, got {text[:60]!r}")


def _list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else []
