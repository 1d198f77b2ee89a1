"""The one YAML loader, for the config file and for provider specs: safe YAML, duplicate keys refused,
and the line of every key kept, so that an error names ``file:line`` and the key path.

A message never quotes the text around an error: that line may hold a key or a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

#: A key path into a loaded document: mapping keys and list indexes.
KeyPath = tuple[str | int, ...]


class YamlError(ValueError):
    """A document that is not valid YAML, or holds a key twice; the message is ``file:line: ...``."""


@dataclass
class LocatedYaml:
    """A loaded document and the line (1-based) of each key path in it."""

    data: Any
    filename: str
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def where(self, path: KeyPath) -> str:
        """``file:line`` of ``path`` (the nearest known ancestor's line)."""
        line = self.line_of(path)
        return self.filename if line is None else f"{self.filename}:{line}"


def load_yaml(text: str, filename: str) -> LocatedYaml:
    """Parse ``text``; YamlError (``filename:line: problem``) for bad YAML or a duplicate key."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise YamlError(f"{filename}:{yaml_problem(exc)}") from None
    located = LocatedYaml(None, filename)
    if node is not None:
        located.lines[()] = node.start_mark.line + 1
        located.data = _build(node, (), located, yaml.SafeLoader(""))
    return located


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (``line:column: problem``), never the text around it."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    where = f"{mark.line + 1}:{mark.column + 1}: " if mark is not None else " "
    return f"{where}{problem}"


def _build(node: yaml.Node, path: KeyPath, located: LocatedYaml, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # merge keys (<<) as PyYAML reads them
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise YamlError(f"{located.filename}:{key_node.start_mark.line + 1}: a key must be a plain value")
            child = (*path, key if isinstance(key, (str, int)) else str(key))
            if key in result:
                raise YamlError(f"{located.filename}:{key_node.start_mark.line + 1}: {_dotted(child)}: duplicate key")
            located.lines[child] = key_node.start_mark.line + 1
            result[key] = _build(value_node, child, located, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item_node in enumerate(node.value):
            located.lines[(*path, index)] = item_node.start_mark.line + 1
            items.append(_build(item_node, (*path, index), located, loader))
        return items
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise YamlError(f"{located.filename}:{yaml_problem(exc)}") from None


def _dotted(path: KeyPath) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).removeprefix(".")


def rule_of(error: Any) -> str:
    """A pydantic error's rule in the words of the config's and the specs' messages (with
    ``hide_input_in_errors``, none of them holds the value)."""
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required"
    return str(error["msg"]).removeprefix("Value error, ")


def data_path(data: Any, loc: KeyPath, keep_last: bool = True) -> KeyPath:
    """``loc`` without the steps that are not in the data (a union's tag, a member type's name); with
    ``keep_last`` the last step stays (the key that is missing, or unknown)."""
    path: list[str | int] = []
    for index, part in enumerate(loc):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif index < len(loc) - 1 or not keep_last:
            continue
        path.append(part)
    return tuple(path)


def error_lines(errors: list[Any], located: LocatedYaml) -> list[str]:
    """Each validation error as ``file:line: key.path: rule``."""
    lines = []
    for error in errors:
        path = data_path(located.data, tuple(error["loc"]), error["type"] in ("missing", "extra_forbidden"))
        key = _dotted(path)
        lines.append(f"{located.where(path)}: {key + ': ' if key else ''}{rule_of(error)}")
    return lines
