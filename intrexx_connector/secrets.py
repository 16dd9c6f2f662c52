"""Keeping client secrets out of messages: finding a secret in text that may quote it in another encoding.

An identity provider that echoes the token request (in `error_description`, an HTML error page, a log line)
quotes the secret the way the request carried it: form-encoded (`+` for space, `%2B` for `+`), or once more
JSON- or HTML-escaped. `contains_secret` looks at the text as it is and through each of those decodings;
`scrub` replaces every readable copy and withholds a message whose copy it cannot cut out. Secrets shorter than
`MIN_SECRET_LENGTH` are not searched for: Entra's are 40 characters, and a short string would match ordinary words.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MIN_SECRET_LENGTH = 8
HIDDEN = "[secret hidden]"
WITHHELD = "[message withheld: it quoted a client secret]"


def _views(text: str) -> set[str]:
    views = {text}
    for _ in range(2):  # a quote of a quote: JSON inside a form body, a form body inside HTML
        for view in list(views):
            views.update(
                {unquote_plus(view), unquote(view), html.unescape(view), view.replace("\\/", "/"), _unjson(view)}
            )
    return views


def _unjson(text: str) -> str:
    try:
        decoded = json.loads(f'"{text}"')
    except ValueError:
        return text
    return decoded if isinstance(decoded, str) else text


def _variants(secret: str) -> list[str]:
    """How a secret reads when quoted: as is, form- and URL-encoded (either hex case), JSON- and HTML-escaped."""
    encoded = {secret, quote_plus(secret), quote(secret, safe=""), quote(secret)}
    encoded |= {re.sub(r"%[0-9A-F]{2}", lambda match: match.group().lower(), value) for value in encoded}
    encoded |= {json.dumps(value)[1:-1] for value in list(encoded)}
    encoded |= {html.escape(value) for value in list(encoded)}
    return sorted(encoded, key=len, reverse=True)


def _searched(secrets: Iterable[str | None]) -> list[str]:
    return [secret for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH]


def contains_secret(text: str, secrets: Iterable[str | None]) -> bool:
    wanted = _searched(secrets)
    if not wanted or not text:
        return False
    return any(secret in view for view in _views(text) for secret in wanted)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every copy of a secret replaced by `[secret hidden]`; WITHHELD if a copy would remain."""
    wanted = _searched(secrets)
    if not wanted or not text or not contains_secret(text, wanted):
        return text
    for secret in wanted:
        for variant in _variants(secret):
            text = text.replace(variant, HIDDEN)
    return WITHHELD if contains_secret(text, wanted) else text
