"""URL checks that follow the WHATWG URL Standard: the way browsers read a URL, and browsers are what carry
Intrexx's users to these URLs and back from Entra.

Python's `urllib.parse` reads URLs differently from a browser: it strips a leading NUL and removes tabs and new
lines (docs.python.org/3/library/urllib.parse.html: "leading WHATWG C0 control and space characters are
stripped", changed in 3.11.4; "unsafe bytes" removed, bpo-43882), accepts host characters the standard forbids
(`^`, `|`, `<`), IPv6 zone ids and percent-encoded bytes in hosts, reads `1.2.3` or `0x7f.1` as a host name where
a browser reads an IPv4 address (1.2.0.3, 127.0.0.1), and leaves `%2e%2e` in a path that a browser resolves as
`..`. A URL is therefore accepted only when ada, a WHATWG-conformant parser (the `ada-url` package; its README:
Node.js has parsed URLs with it since Node.js 18), accepts it *and* reads the same host, port and path as `urllib.parse`
does, and when the host is a DNS name or an IP address.

Paths are checked once more after percent-decoding: servlet containers decode before they route, so `%2e%2e`,
`%2f` and `..;` reach them as `..`, `/` and a path parameter.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from ada_url import HostType, check_url, parse_url

from .text import describe_characters, unsafe_characters

# A DNS name: labels of letters, digits, '-' (not first or last) and '_' (common in intranet names and accepted by
# browsers), at most 63 characters each and 253 in all (RFC 1035 section 2.3.4), an optional final dot.
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\.?\Z){_LABEL}(?:\.{_LABEL})*\.?")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class UrlError(ValueError):
    """A URL that is not accepted; the message says why, in the words `url_problems` uses."""


@dataclass(frozen=True)
class WebUrl:
    """An accepted URL, as a browser reads it."""

    scheme: str
    host: str  # lower case; IPv6 addresses in brackets
    port: int
    path: str

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def origin_text(self) -> str:
        """The origin as the WHATWG URL Standard serialises it: the default port left out."""
        default = _DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{self.host}" + ("" if self.port == default else f":{self.port}")

    @property
    def href(self) -> str:
        """The whole URL as the WHATWG URL Standard serialises it (host in lower case, no default port)."""
        return self.origin_text + self.path


def url_problems(
    value: str,
    *,
    http_hosts: tuple[str, ...] = (),
    allow_path: bool = True,
    example: str = "an absolute https URL such as https://intrexx.example.com/portal",
) -> list[str]:
    """Why `value` is not an https URL a browser reads as we do (empty when it is). `http_hosts` may use http."""
    try:
        _parse(value, http_hosts, allow_path, example)
    except _Refused as problems:
        return problems.reasons
    return []


# parse_web_url and request_origin are pure functions of their arguments and judge the same few URLs again and again
# (every request verify, doctor and notify send, every retry); a bounded memo keeps three parsers off that path.
# WebUrl is frozen, so a remembered answer cannot be changed by a caller; refusals (UrlError) are not remembered.
_MEMO = 256


@functools.lru_cache(maxsize=_MEMO)
def parse_web_url(value: str, *, http_hosts: tuple[str, ...] = (), allow_path: bool = True) -> WebUrl:
    """The URL as a browser reads it; UrlError with the first problem when it is not accepted."""
    try:
        return _parse(value, http_hosts, allow_path, "an absolute https URL")
    except _Refused as problems:
        raise UrlError(problems.reasons[0]) from None


def path_problems(path: str) -> list[str]:
    """Why a URL path (or a path relative to one) is unsafe once percent-decoded as a server decodes it."""
    reasons = []
    if _BAD_PERCENT.search(path):
        reasons.append("'%' must start a percent-encoded byte such as %20")
    decoded = path
    for _ in range(3):  # a server may decode twice (a proxy, then the servlet container): look through that too
        decoded, previous = unquote(decoded), decoded
        if decoded == previous:
            break
    encoded = " (also when percent-encoded)" if decoded != path else ""
    bad = unsafe_characters(decoded)
    if bad:
        reasons.append(f"must not contain control characters{encoded} ({describe_characters(bad)})")
    if "\\" in decoded:
        reasons.append(f"must not contain backslashes{encoded}")
    if ";" in decoded:
        # Servlet containers read ';' as the start of a path parameter, so '..;' climbs a directory that a proxy
        # in front did not see (Orange Tsai, "Breaking Parser Logic", Black Hat USA 2018).
        reasons.append(f"must not contain ';'{encoded}: servlet containers read it as a path parameter")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        reasons.append(f"must not contain '.' or '..' segments{encoded}")
    if any(character in decoded for character in "?#") and encoded:
        reasons.append("must not contain '?' or '#', also not percent-encoded")
    return reasons


def relative_path_problems(path: str) -> list[str]:
    """Why a path relative to a base URL would not stay what it is once a browser joins and reads it."""
    reasons = path_problems(path)
    if reasons:
        return reasons
    probe = f"https://intrexx.invalid/{path}"
    if not check_url(probe):
        return ["is not a valid URL path under the WHATWG URL Standard"]
    read = parse_url(probe)["pathname"]
    if read != f"/{path}":
        return [f"a browser reads it as {read[1:]!r}: write it that way (non-ASCII and spaces percent-encoded)"]
    return []


class _Refused(Exception):
    """Raised inside `_parse`: the URL is not accepted, for these reasons."""

    def __init__(self, reasons: list[str]):
        super().__init__(reasons[0])
        self.reasons = reasons


def _parse(value: str, http_hosts: tuple[str, ...], allow_path: bool, example: str) -> WebUrl:
    """The URL as a browser reads it; _Refused with every reason when it is not accepted."""
    _refuse_unsafe_text(value)
    parts, host, port = _split(value, example)
    _refuse(_shape_reasons(value, parts, host, http_hosts))
    assert host is not None  # _shape_reasons refuses a URL without one
    if not check_url(value):
        raise _Refused(
            [
                "is not a valid URL under the WHATWG URL Standard that browsers apply (host characters such as "
                "^ | < > %, IPv6 zone ids and malformed IPv4 addresses are refused)"
            ]
        )
    read = parse_url(value)
    read_host, read_path = str(read["hostname"]), str(read["pathname"])
    reasons = _host_reasons(host, read_host, read["host_type"])
    if port == 0:
        reasons.append("must use a port from 1 to 65535")
    reasons += _path_reasons(parts.path, read_path, allow_path)
    _refuse(reasons)
    return WebUrl(parts.scheme, read_host, port or _DEFAULT_PORTS[parts.scheme], read_path)


def _refuse(reasons: list[str]) -> None:
    if reasons:
        raise _Refused(reasons)


def _refuse_unsafe_text(value: str) -> None:
    bad = unsafe_characters(value)
    if bad:
        raise _Refused([f"must not contain control characters ({describe_characters(bad)})"])
    if any(character.isspace() for character in value) or "\\" in value:
        raise _Refused(["must not contain white space or backslashes"])


def _split(value: str, example: str) -> tuple[SplitResult, str | None, int | None]:
    """Python's reading of the URL, which the browser's must agree with."""
    try:
        parts = urlsplit(value)
        host, port = parts.hostname, parts.port
    except ValueError as error:
        raise _Refused([f"must be {example} ({error})"]) from None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise _Refused([f"must be {example}"])
    return parts, host, port


def _shape_reasons(value: str, parts: SplitResult, host: str | None, http_hosts: tuple[str, ...]) -> list[str]:
    """What an https URL of ours may not have: http elsewhere than `http_hosts`, credentials, a wildcard, a query,
    a fragment, or no host."""
    reasons = []
    if parts.scheme == "http" and host not in http_hosts:
        if http_hosts:
            reasons.append(
                f"must use https (http is allowed only for {' and '.join(http_hosts)}); Entra refuses http "
                "redirect URIs for other hosts"
            )
        else:
            reasons.append("must use https")
    if "@" in parts.netloc:
        reasons.append("must not carry credentials (user:password@)")
    for character, reason in (("*", "a wildcard '*'"), ("?", "a query ('?...')"), ("#", "a fragment ('#...')")):
        if character in value:
            reasons.append(f"must not {'contain' if character == '*' else 'have'} {reason}")
    if not host:
        reasons.append("must name a host")
    return reasons


def _host_reasons(host: str, read_host: str, host_type: HostType) -> list[str]:
    """Whether a browser reads the host Python read. Letter case is no difference: both write hosts in lower case."""
    if host_type == HostType.IPV6:
        if ipaddress.ip_address(read_host.strip("[]")) != ipaddress.ip_address(host):
            return [f"a browser reads the host as {read_host}"]
        return []
    if read_host != host:
        return [f"a browser reads the host as {read_host!r}: write it that way"]
    if host_type == HostType.DEFAULT and not _DNS_NAME.fullmatch(host):
        return ["must name a host by a DNS name (letters, digits, '-', '_' and '.') or an IP address"]
    return []


def _path_reasons(path: str, read_path: str, allow_path: bool) -> list[str]:
    reasons = []
    if not allow_path and path not in ("", "/"):
        reasons.append("must not have a path")
    path_reasons = path_problems(path)
    reasons += path_reasons
    if not path_reasons and read_path != (path or "/"):
        reasons.append(f"a browser reads the path as {read_path!r}: write it that way")
    return reasons


@functools.lru_cache(maxsize=_MEMO)
def request_origin(url: str) -> WebUrl:
    """The origin of an absolute https URL that may carry a path and a query (a request's target, a paging link),
    as a browser reads it: its scheme and authority must be accepted by `parse_web_url`, and ada must read the
    whole URL with that same host and port. The path and query are not judged; `path` is "/". UrlError if not."""
    bad = unsafe_characters(url)
    if bad or any(character.isspace() for character in url) or "\\" in url:
        raise UrlError("must not contain control characters, white space or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as error:
        raise UrlError(f"must be an absolute https URL ({error})") from None
    site = parse_web_url(f"{parts.scheme}://{parts.netloc}", allow_path=False)
    if not check_url(url):
        raise UrlError("is not a valid URL under the WHATWG URL Standard that browsers apply")
    read = parse_url(url)
    port = int(read["port"]) if read["port"] else _DEFAULT_PORTS.get(site.scheme)
    if (read["protocol"], read["hostname"], port) != (f"{site.scheme}:", site.host, site.port):
        raise UrlError(f"a browser reads its origin as {read['origin']!r}")
    return WebUrl(site.scheme, site.host, site.port, "/")


def shown_origin(url: str) -> str:
    """For a message about a URL that may be refused (any scheme): its origin as a browser reads it, without
    credentials, path or query (they may quote a request); a placeholder when it is no valid URL."""
    if unsafe_characters(url) or not check_url(url):
        return "an address that is not a valid URL"
    origin = str(parse_url(url)["origin"])
    return origin[:120] if origin not in ("", "null") else "an address without an origin"


def same_origin(url: str, origin: WebUrl | str) -> bool:
    """Whether `url` (a query allowed: `request_origin`) is an accepted https URL on `origin`'s scheme, host and
    port (`origin` a WebUrl, or a URL whose origin counts; False when either is not accepted)."""
    try:
        expected = origin if isinstance(origin, WebUrl) else parse_web_url(origin)
        return request_origin(url).origin == expected.origin
    except UrlError:
        return False


def origin_of(url: str, *, http_hosts: tuple[str, ...] = ()) -> str:
    """The WHATWG serialisation of an accepted URL's origin (`https://host[:port]`, the port only when it is not
    the scheme's default); UrlError when the URL is not accepted."""
    return parse_web_url(url, http_hosts=http_hosts).origin_text
