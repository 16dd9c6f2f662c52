"""Reading a stack file (`Pulumi.<stack>.yaml`) safely, and the key mistakes only the file itself shows.

The Pulumi engine hands the program only the keys of its own namespace, and no public API lists them
(pulumi/pulumi#6789), so a misspelt key, a key without the `intrexx-exchange:` prefix or with a misspelt prefix
is visible only in the file. `plan`, `doctor` and the program (when the file is beside it, as under `pulumi up`)
read it here.

The file is untrusted input: it is read with limits (size, nesting depth, and the size of the document once YAML
aliases are expanded, which stops alias bombs), and scalars are read the way Pulumi's YAML 1.2 parser reads
them: `2026-01-01` stays a string and only true/false are booleans. Every problem is one `StackFileError` line
naming the file, and for YAML errors the line and column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from .config import NAMESPACE, STACK_KEYS, StackSettings, parse_stack_config, provider_environment

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 100_000
# Namespaces a stack file of this project may use besides its own: the azuread provider and Pulumi's own keys.
OTHER_NAMESPACES = ("azuread", "pulumi")


class StackFileError(ValueError):
    """The stack file cannot be read; the message is one line naming the file (and the line and column)."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no timestamps, and a nesting limit."""

    yaml_implicit_resolvers = {  # noqa: RUF012 - PyYAML reads it as a class attribute
        first: [
            (tag, regexp)
            for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
        ]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

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


for _first in "tTfF":
    _Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list(_first)
    )


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the document has once aliases are expanded (a shared node counts every time it is used)."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = 1  # a cycle (a recursive alias) counts once and is refused by the depth limit later
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_EXPANDED_NODES + 1)
    return sizes[id(node)]


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document with the limits above; StackFileError names `name`, line and column."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_EXPANDED_NODES:
            raise StackFileError(
                f"{name}: the document expands to more than {MAX_EXPANDED_NODES} values "
                "(YAML aliases); write the values out"
            )
        return loader.construct_document(node)
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
        loader.dispose()


@dataclass(frozen=True)
class StackFile:
    path: Path
    config: Mapping[str, Any]  # every key of `config:`, as written

    def values(self, namespace: str) -> dict[str, Any]:
        """The keys of `namespace` without their prefix; encrypted (`secure:`) values are left out, since they
        cannot be read without the stack's secrets provider."""
        prefix = f"{namespace}:"
        return {
            key[len(prefix) :]: value
            for key, value in self.config.items()
            if key.startswith(prefix) and value is not None and not _is_secure(value)
        }

    def key_problems(self) -> list[str]:
        """Keys whose namespace is missing or misspelt, each naming the key as written and the key expected."""
        problems = []
        for key in self.config:
            namespace, colon, name = key.partition(":")
            if colon and namespace in (NAMESPACE, *OTHER_NAMESPACES):
                continue
            if not colon:
                hint = (
                    f"write '{NAMESPACE}:{key}'"
                    if key in STACK_KEYS
                    else f"write it as '<namespace>:{key}', e.g. '{NAMESPACE}:{key}'"
                )
                problems.append(f"{key}: config keys need a namespace; {hint}")
            elif name in STACK_KEYS or difflib.get_close_matches(namespace, [NAMESPACE], n=1, cutoff=0.6):
                problems.append(f"{key}: unknown namespace '{namespace}'; did you mean '{NAMESPACE}:{name}'?")
        return problems


def _is_secure(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def default_project_dir() -> Path:
    """Where Pulumi.<stack>.yaml is looked for: the current directory when it holds a Pulumi.yaml (as for
    `pulumi`), else this project."""
    here = Path.cwd()
    return here if (here / "Pulumi.yaml").is_file() else Path(__file__).resolve().parent.parent


def stack_file_path(stack: str, project_dir: Path) -> Path:
    return Path(project_dir) / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> StackFile:
    """Read and check a stack file. Raises FileNotFoundError when it does not exist, StackFileError otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise StackFileError(f"{path.name}: cannot read it ({error.strerror})") from None
    if len(data) > MAX_BYTES:
        raise StackFileError(f"{path.name}: larger than {MAX_BYTES} bytes; is this a stack file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise StackFileError(f"{path.name}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    document = load_yaml(text, path.name)
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise StackFileError(
            f"{path.name}: must be a mapping with a 'config:' section, got a {type(document).__name__}"
        )
    config = document.get("config")
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise StackFileError(
            f"{path.name}: 'config:' must be a mapping of '<namespace>:<key>: value', got a {type(config).__name__}"
        )
    bad = [key for key in config if not isinstance(key, str)]
    if bad:
        raise StackFileError(f"{path.name}: config key {bad[0]!r} must be a string such as '{NAMESPACE}:portals'")
    return StackFile(path, dict(config))


def load_stack_settings(stack: str, project_dir: Path, today: date) -> StackSettings:
    """The checked settings of `Pulumi.<stack>.yaml` in `project_dir`, as the program would see them under
    `pulumi up`, with the stack file's own key problems. Raises FileNotFoundError, StackFileError or ConfigError."""
    stack_file = read_stack_file(stack_file_path(stack, project_dir))
    azuread = stack_file.values("azuread")
    cloud = provider_environment(_text(azuread.get("environment")), _text(azuread.get("metadataHost")))
    return parse_stack_config(stack_file.values(NAMESPACE), stack, today, cloud, stack_file.key_problems())


def _text(value: object) -> str | None:
    return None if value is None else str(value)
