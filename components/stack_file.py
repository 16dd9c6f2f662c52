"""Reading a stack file (`Pulumi.<stack>.yaml`) the way Pulumi reads it, and the key mistakes only its keys show.

The file is untrusted input: it is read with limits (size, nesting depth, and the size of the document once YAML
aliases are expanded, which stops alias bombs); every problem is one `StackFileError` line naming the file, and
for YAML errors the line and column.

What the program gets under `pulumi up` is decided by the Pulumi CLI, which reads the file with go-yaml v3 and
hands the program one string per key. This module repeats that, so that `plan` and `doctor` see exactly the
values `pulumi up` would (sources read, pulumi/pulumi at 1b59488, go-yaml v3.0.1 as pinned in pulumi's sdk/go.mod):

- sdk/go/common/workspace/loaders.go `LoadProjectStackBytes`: the file (UTF-8 byte order mark stripped) is
  decoded by go-yaml v3 (sdk/go/common/encoding/marshal.go), keys without a namespace get the project's
  (`stackConfigNamespacedWithProject`), and sdk/go/common/workspace/project.go `SimplifyMarshalledValue` refuses
  mapping keys that are not strings ("expected only string keys").
- go-yaml v3 decode.go: a mapping key written twice is refused ("mapping key ... already defined"); `<<` merges;
  tags on mappings and sequences are ignored. resolve.go: quoted and block scalars are text; a plain scalar is
  null (`~`, `null`, empty), a boolean only as true/True/TRUE/false/False/FALSE (YAML 1.2 core, not 1.1's yes/on),
  an integer by Go's `strconv.ParseInt(text without '_', 0, 64)` (so `0x1e`, `0b11110`, `0o36` and `3_0` are 30,
  and `030` is octal 24, which go-yaml keeps from YAML 1.1), a float by its YAML float pattern, a timestamp
  when it starts with YYYY-, else text (`1:00` stays text). An explicit tag the text does not fit
  (`!!int abc`, `!!timestamp 2026-13-45`) is an error.
- sdk/go/common/resource/config/object.go and value.go: each top-level value becomes the string the program
  reads with `pulumi.Config.get` (`MarshalString`): text as written, numbers and booleans as JSON, a timestamp as
  Go's `time.Time.String()`, mappings and sequences as JSON (integral floats print without a fraction in Go's
  JSON); `{secure: ...}` is an encrypted value, readable only with the stack's secrets provider.
- sdk/go/common/resource/config/key.go `ParseKey`: a key is `<namespace>:<name>` (or `<namespace>:config:<name>`),
  case-sensitive, so `Intrexx-Exchange:portals` is not this program's key.

The Python SDK (sdk/python/lib/pulumi/config.py, runtime/config.py) then reads those strings: `Config.get` returns
the text, `get_object` parses the JSON.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .config import NAMESPACE, STACK_KEYS, StackSettings, parse_stack_config, provider_environment
from .text import TextFileError, read_text_file

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000
# The project's name (Pulumi.yaml `name`): Pulumi gives a key written without a namespace this one.
PROJECT_NAMESPACE = NAMESPACE
# Namespaces a stack file of this project may use besides its own: the azuread provider and Pulumi's own keys.
OTHER_NAMESPACES = ("azuread", "pulumi")


class StackFileError(ValueError):
    """The stack file cannot be read; the message is one line naming the file (and the line and column)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's scanner, parser and composer with a nesting limit; the nodes are read by `_Reader`, never by PyYAML's
    constructors. A scalar's node keeps its explicit tag, or "" when it has none."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_scalar_node(self, anchor: Any) -> Any:
        event = self.get_event()
        tag = "" if event.tag in (None, "!") else event.tag  # "!": go-yaml treats it as no tag
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        if anchor is not None:
            self.anchors[anchor] = node
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the document has once aliases are expanded (a shared node counts every time it is used)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a cycle (a recursive alias) counts once and is refused by the reader later
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_EXPANDED_NODES + 1)
    return sizes[id(node)]


# go-yaml v3 resolve.go -------------------------------------------------------------------------------------------

_LONG_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP, _BINARY, _MERGE = (
    "!!str",
    "!!int",
    "!!float",
    "!!bool",
    "!!null",
    "!!timestamp",
    "!!binary",
    "!!merge",
)
_RESOLVABLE = ("", _STR, _BOOL, _INT, _FLOAT, _NULL, _TIMESTAMP)
_WORDS: dict[str, tuple[str, object]] = {
    **{word: (_BOOL, True) for word in ("true", "True", "TRUE")},
    **{word: (_BOOL, False) for word in ("false", "False", "FALSE")},
    **{word: (_NULL, None) for word in ("", "~", "null", "Null", "NULL")},
    **{word: (_FLOAT, math.nan) for word in (".nan", ".NaN", ".NAN")},
    **{word: (_FLOAT, math.inf) for word in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")},
    **{word: (_FLOAT, -math.inf) for word in ("-.inf", "-.Inf", "-.INF")},
    "<<": (_MERGE, "<<"),
}
_YAML_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
# Go's strconv.ParseInt(s, 0, 64) syntax: a sign, then 0x/0o/0b and digits, a leading 0 for octal, or decimal.
_GO_INT = re.compile(r"[+-]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
# go-yaml's timestamp layouts (Go time.Parse): 2006-1-2T15:4:5.999999999Z07:00 (also with t), "2006-1-2 15:4:5.9",
# 2006-1-2.
_TIMESTAMP_RE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<m>[0-9]{1,2})-(?P<d>[0-9]{1,2})"
    r"(?:(?P<sep>[Tt ])(?P<H>[0-9]{1,2}):(?P<M>[0-9]{1,2}):(?P<S>[0-9]{1,2})(?:\.(?P<f>[0-9]{1,9}))?"
    r"(?P<z>Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_HINTS = {**dict.fromkeys("+-", "S"), **dict.fromkeys("0123456789", "D"), **dict.fromkeys("yYnNtTfFoO~", "M"), ".": "."}


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_LONG_TAG) :] if tag.startswith(_LONG_TAG) else tag


def _go_int(text: str) -> int | None:
    """strconv.ParseInt(text, 0, 64), else ParseUint(text, 0, 64); None when neither takes it."""
    if len(text) > 70 or not _GO_INT.fullmatch(text):  # 64 binary digits, a prefix and a sign at most
        return None
    digits = text.lstrip("+-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567":
        number = int(digits, 8) * (-1 if text.startswith("-") else 1)
    else:
        number = int(text, 0)
    if -(2**63) <= number < 2**63 or (text[0] != "+" and text[0] != "-" and 0 <= number < 2**64):
        return number
    return None


class _Timestamp(str):
    """A plain scalar go-yaml reads as a timestamp; its text is Go's `time.Time.String()`."""


def _timestamp(text: str) -> _Timestamp | None:
    match = _TIMESTAMP_RE.fullmatch(text)
    if match is None or (match["sep"] == " " and match["z"]):  # the space layout has no zone
        return None
    try:
        when = datetime(int(match["y"]), int(match["m"]), int(match["d"]), int(match["H"] or 0), int(match["M"] or 0))
        if match["S"] is not None and int(match["S"]) > 59:
            return None
        when += timedelta(seconds=int(match["S"] or 0))
    except ValueError:
        return None
    fraction = (match["f"] or "").rstrip("0")
    zone = match["z"]
    if zone in (None, "Z", "+00:00", "-00:00"):
        # Assumption: the Pulumi CLI runs in UTC (as CI agents do); Go names a zero offset of the local zone so.
        suffix = "+0000 UTC"
    else:
        suffix = f"{zone[:3]}{zone[4:]} {zone[:3]}{zone[4:]}"  # a fixed zone without a name prints its offset twice
    return _Timestamp(f"{when:%Y-%m-%d %H:%M:%S}{'.' + fraction if fraction else ''} {suffix}")


def _resolve(tag: str, text: str) -> tuple[str, object]:
    """go-yaml v3 `resolve(tag, in)`: the tag the text resolves to, and its value."""
    hint = _HINTS.get(text[:1], "N" if text == "" else "")
    if not hint:
        return _STR, text
    if text in _WORDS:
        return _WORDS[text]
    if hint == "." and _DOT_FLOAT.fullmatch(text):
        return _FLOAT, float(text)
    if hint in "DS":
        if tag in ("", _TIMESTAMP) and (stamp := _timestamp(text)) is not None:
            return _TIMESTAMP, stamp
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return _INT, number
        if _YAML_FLOAT.fullmatch(plain) and math.isfinite(value := float(plain)):
            return _FLOAT, value
    return _STR, text


def _go_float_text(value: float) -> str:
    """A float64 as Go's encoding/json writes it: no fraction for integral values, exponents from 1e21."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class _Secure:
    """An encrypted value (`{secure: <ciphertext>}`): only the stack's secrets provider can read it."""

    ciphertext: str


class _Reader:
    """Nodes to the values go-yaml v3 decodes them into, as Pulumi keeps them."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, node: yaml.Node, problem: str) -> StackFileError:
        mark = node.start_mark
        return StackFileError(f"{self.name}, line {mark.line + 1}, column {mark.column + 1}: {problem}")

    def value(self, node: yaml.Node, path: tuple[int, ...] = ()) -> object:
        if id(node) in path:
            raise self.fail(node, "a YAML alias refers to a node that contains it")
        if len(path) >= MAX_DEPTH:
            raise self.fail(node, f"nesting deeper than {MAX_DEPTH} levels (YAML aliases included)")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        inner = (*path, id(node))
        if isinstance(node, yaml.SequenceNode):
            return [self.value(child, inner) for child in node.value]
        assert isinstance(node, yaml.MappingNode)
        return self.mapping(node, inner)

    def scalar(self, node: yaml.ScalarNode) -> object:
        tag, text = _short_tag(node.tag), node.value
        if tag == _STR or (tag == "" and node.style):  # quoted, literal and folded scalars are text
            return text
        if tag == _BINARY:
            try:
                return base64.b64decode(text.replace("\n", ""), validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                raise self.fail(node, "!!binary value contains invalid base64 data") from None
        if tag not in _RESOLVABLE:
            return text  # go-yaml keeps the text of a scalar with a tag of its own
        resolved_tag, value = _resolve(tag, text)
        if tag in ("", resolved_tag):
            return value
        if tag == _FLOAT and resolved_tag == _INT:
            return float(value)  # type: ignore[arg-type]
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise self.fail(node, f"cannot decode {resolved_tag} `{shown}` as a {tag}")

    def key(self, node: yaml.Node) -> str:
        key = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            raise self.fail(node, f"mapping keys must be text, got {_describe_key(node)}")
        return key

    def mapping(self, node: yaml.MappingNode, path: tuple[int, ...]) -> dict[str, object]:
        seen: dict[str, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                earlier = seen.get(key_node.value)
                if earlier is not None:
                    raise self.fail(
                        key_node,
                        f"key {key_node.value!r} is given twice (first on line {earlier.start_mark.line + 1}); "
                        "Pulumi refuses a stack file with a repeated key",
                    )
                seen[key_node.value] = key_node
        result: dict[str, object] = {}
        merges = []
        for key_node, value_node in node.value:
            if _is_merge(key_node):
                merges.append(value_node)
                continue
            key = self.key(key_node)
            if key in result:
                raise self.fail(key_node, f"key {key!r} is given twice (written differently)")
            result[key] = self.value(value_node, path)
        for merge in merges:
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise self.fail(merge, "map merge requires map or sequence of maps as the value")
                merged = self.value(source, path)
                assert isinstance(merged, dict)
                for key, value in merged.items():
                    result.setdefault(key, value)
        if set(result) == {"secure"} and isinstance(result["secure"], str):
            return {"secure": _Secure(result["secure"])}
        return result


def _is_merge(node: yaml.Node) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.value == "<<"
        and not node.style
        and node.tag in ("", _LONG_TAG + "merge")
    )


def _describe_key(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        return f"{node.value!r}"
    return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document the way Pulumi does (see above), with the limits above; StackFileError names
    `name`, line and column. Mappings are dicts with text keys; an encrypted value is `{"secure": _Secure}`."""
    loader = None
    try:
        loader = _Loader(text)  # its reader already refuses characters YAML does not allow (a NUL, an escape)
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise StackFileError(
                f"{name}: the document expands to more than {MAX_EXPANDED_NODES} values "
                "(each YAML alias counted as often as it is used); no stack file needs that many"
            )
        return _Reader(name).value(node)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or error.context or "not valid YAML"
        raise StackFileError(f"{name}{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{name}: not valid YAML ({str(error).splitlines()[0]})") from None
    except RecursionError:
        raise StackFileError(f"{name}: nesting too deep") from None
    finally:
        if loader is not None:
            loader.dispose()


def pulumi_text(value: object) -> str | None:
    """The string `pulumi.Config.get` returns for a top-level value Pulumi read (config/object.go `MarshalString`),
    None for an encrypted value or one holding encrypted parts."""
    if isinstance(value, _Secure) or (isinstance(value, dict) and isinstance(value.get("secure"), _Secure)):
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (dict, list)) and _holds_secure(value):
        return None
    return json.dumps(_for_json(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _holds_secure(value: object) -> bool:
    if isinstance(value, _Secure):
        return True
    if isinstance(value, dict):
        return any(_holds_secure(item) for item in value.values())
    return isinstance(value, list) and any(_holds_secure(item) for item in value)


def _for_json(value: object) -> object:
    """Go's encoding/json of the decoded value, as Python's json reads it back: integral floats are integers."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return int(value) if value == int(value) and abs(value) < 1e21 else value
    if isinstance(value, dict):
        return {key: _for_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_for_json(item) for item in value]
    return value


@dataclass(frozen=True)
class StackFile:
    path: Path
    config: Mapping[str, str | None]  # every `namespace:name` key -> the text the program gets (None: encrypted)

    def values(self, namespace: str) -> dict[str, str]:
        """The keys of `namespace` without their prefix, as `pulumi.Config(namespace).get` returns them; encrypted
        (`secure:`) values are left out, since they cannot be read without the stack's secrets provider."""
        prefix = f"{namespace}:"
        return {
            key[len(prefix) :]: text for key, text in self.config.items() if key.startswith(prefix) and text is not None
        }

    def key_problems(self) -> list[str]:
        """Misspelt keys and namespaces, whatever their values (encrypted ones too)."""
        return key_problems(self.config)

    def is_source_of(self, handed_over: Mapping[str, str]) -> bool:
        """Whether Pulumi read this file: each of the program's keys is in it exactly when Pulumi handed it over,
        with the same text (an encrypted value only has to be there)."""
        prefix = f"{NAMESPACE}:"
        for key in STACK_KEYS:
            if (prefix + key in self.config) != (key in handed_over):
                return False
            text = self.config.get(prefix + key)
            if text is not None and not _same_text(text, handed_over[key]):
                return False
        return True


def _same_text(ours: str, theirs: str) -> bool:
    """The same value: the same text, or JSON texts of the same value (Go's JSON escapes and spaces differently)."""
    if ours == theirs:
        return True
    try:
        return bool(json.loads(ours) == json.loads(theirs))
    except (ValueError, RecursionError):
        return False


def key_problems(keys: Mapping[str, object] | list[str]) -> list[str]:
    """Problems of config keys as Pulumi holds them (`namespace:name`): this program's keys that do not exist,
    and namespaces that are close to one of this project's but not it (Pulumi's keys are case-sensitive:
    sdk/go/common/resource/config/key.go), each naming the key as written and the key meant."""
    problems = []
    for key in keys:
        namespace, _, name = _split_key(key)
        if namespace == NAMESPACE:
            if name not in STACK_KEYS:
                problems.append(
                    f"{key}: unknown key{_did_you_mean(name, STACK_KEYS)}; known keys: {', '.join(STACK_KEYS)}"
                )
            continue
        if namespace in OTHER_NAMESPACES:
            continue
        meant = next((known for known in (NAMESPACE, *OTHER_NAMESPACES) if known == namespace.lower()), None)
        if meant is None and (
            name in STACK_KEYS or difflib.get_close_matches(namespace.lower(), [NAMESPACE], n=1, cutoff=0.6)
        ):
            meant = NAMESPACE
        if meant is not None:
            case = " (keys are case-sensitive)" if namespace.lower() == meant else ""
            problems.append(f"{key}: unknown namespace '{namespace}'{case}; did you mean '{meant}:{name}'?")
    return problems


def _split_key(key: str) -> tuple[str, str, str]:
    namespace, colon, name = key.partition(":")
    if name.startswith("config:"):
        name = name.removeprefix("config:")
    return namespace, colon, name


def _did_you_mean(key: str, known: tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _config_keys(path: Path, config: Mapping[str, object]) -> dict[str, str | None]:
    """`config:` as Pulumi keys it (loaders.go `stackConfigNamespacedWithProject`, key.go `ParseKey`), each with
    the text the program gets."""
    keyed: dict[str, str | None] = {}
    for written, value in config.items():
        colons = written.count(":")
        if colons == 0:
            key = f"{PROJECT_NAMESPACE}:{written}"
        elif colons == 1 and written.partition(":")[0] and written.partition(":")[2]:
            key = written
        elif colons == 2 and written.split(":")[1] == "config" and all(written.split(":")):
            namespace, _, name = written.split(":")
            key = f"{namespace}:{name}"
        else:
            raise StackFileError(
                f"{path.name}: config key {written!r} is not of the form '<namespace>:<name>', "
                f"e.g. '{NAMESPACE}:portals'"
            )
        if key in keyed:
            raise StackFileError(
                f"{path.name}: config key {written!r} is {key!r}, which is given twice; keep one of them"
            )
        try:
            keyed[key] = pulumi_text(value)
        except ValueError:
            raise StackFileError(
                f"{path.name}: config key {written!r} holds .nan or .inf, which Pulumi cannot pass on"
            ) from None
    return keyed


def default_project_dir() -> Path:
    """Where Pulumi.<stack>.yaml is looked for: the current directory when it holds a Pulumi.yaml (as for
    `pulumi`), else this project."""
    here = Path.cwd()
    return here if (here / "Pulumi.yaml").is_file() else Path(__file__).resolve().parent.parent


def stack_file_path(stack: str, project_dir: Path) -> Path:
    """`Pulumi.<stack>.yaml` of a stack named `stack` or `org/project/stack`: Pulumi names the file after the stack's
    own name only (pulumi/pulumi pkg/cmd/pulumi: `workspace.DetectProjectStackPath(stack.Ref().Name().Q())`)."""
    return Path(project_dir) / f"Pulumi.{stack.rpartition('/')[2]}.yaml"


def read_stack_file(path: Path) -> StackFile:
    """Read and check a stack file. Raises FileNotFoundError when it does not exist, StackFileError otherwise."""
    path = Path(path)
    # The tool's one file reader (components/text.py): UTF-8, or UTF-16 with a byte order mark, as go-yaml v3 reads
    # it for Pulumi (readerc.go, yaml_parser_determine_encoding: "If no BOM is found, the UTF-8 encoding is assumed").
    try:
        text = read_text_file(path, path.name, MAX_BYTES)
    except TextFileError as error:
        raise StackFileError(str(error)) from None
    document = load_yaml(text, path.name)
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise StackFileError(f"{path.name}: must be a mapping with a 'config:' section, got {_kind(document)}")
    config = document.get("config")
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise StackFileError(
            f"{path.name}: 'config:' must be a mapping of '<namespace>:<key>: value', got {_kind(config)}"
        )
    return StackFile(path, _config_keys(path, config))


def _kind(value: object) -> str:
    return "a list" if isinstance(value, list) else f"the value {str(value)[:40]!r}"


def load_stack_settings(stack: str, project_dir: Path, today: date) -> StackSettings:
    """The checked settings of `Pulumi.<stack>.yaml` in `project_dir`, from the strings the program would get
    under `pulumi up`, with the stack file's own key problems. Raises FileNotFoundError, StackFileError or
    ConfigError."""
    stack_file = read_stack_file(stack_file_path(stack, project_dir))
    encrypted = [key for key, text in stack_file.config.items() if text is None and _split_key(key)[0] == NAMESPACE]
    if encrypted and not stack_file.key_problems():
        # Its value under `pulumi up` is unknown here: a default in its place would plan something else.
        raise StackFileError(
            f"{stack_file.path.name}: {', '.join(encrypted)}: encrypted (`secure:`); this command reads the stack "
            "file without the stack's secrets provider and cannot see the value `pulumi up` would use; none of "
            "this program's keys holds a secret, so keep them plain"
        )
    azuread = stack_file.values("azuread")
    cloud = provider_environment(azuread.get("environment"), azuread.get("metadataHost"))
    raw = {key: text for key, text in stack_file.values(NAMESPACE).items() if key in STACK_KEYS}
    # pulumi.get_stack() is the stack's own name, also under `--stack org/project/stack`: the default environment.
    return parse_stack_config(raw, stack.rpartition("/")[2], today, cloud, stack_file.key_problems())
