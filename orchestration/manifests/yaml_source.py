"""YAML documents that remember where every value came from.

PyYAML's C loader composes the node graph (fast); a small walker turns nodes into
plain Python values, rejecting what YAML silently accepts but a manifest must not
(duplicate keys, merge keys, non-string keys). The node graph is kept so that a
finding can be pinned to ``file:line:col`` afterwards, only when one is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from orchestration.manifests.findings import Finding

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"

# Scalars other than strings are built by PyYAML's own constructor, so YAML 1.1's rules
# (0x1F, 1_000, yes/no, .inf) behave exactly as everywhere else PyYAML is used.
_SCALAR_CONSTRUCTOR = yaml.SafeLoader("")

Loc = Sequence[str | int]

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - PyYAML's wheels ship libyaml
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]


class YamlSourceError(Exception):
    """A file that cannot be read as a manifest document at all."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed YAML document plus the node graph that knows every position."""

    path: str
    data: Any
    root: yaml.Node

    def position(self, loc: Loc) -> tuple[int, int]:
        """Line and column (1-based) of the deepest node on ``loc`` that exists.

        A key that is missing resolves to the mapping that should hold it; an unknown
        key resolves to the key itself, which is where a reader looks for it.
        """
        node = self.root
        for part in loc:
            child = _child(node, part)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1, node.start_mark.column + 1

    def source_text(self, loc: Loc) -> str | None:
        """The scalar exactly as written at ``loc`` (``011`` stays ``011``), if it is one."""
        node = self.root
        for part in loc:
            child = _child(node, part)
            if child is None:
                return None
            node = child
        return node.value if isinstance(node, yaml.ScalarNode) else None

    def key_position(self, loc: Loc) -> tuple[int, int]:
        """Position of the key that names ``loc[-1]``, falling back to :meth:`position`."""
        if loc:
            parent = self.root
            for part in loc[:-1]:
                child = _child(parent, part)
                if child is None:
                    return self.position(loc)
                parent = child
            if isinstance(parent, yaml.MappingNode):
                for key_node, _ in parent.value:
                    if key_node.value == loc[-1]:
                        return key_node.start_mark.line + 1, key_node.start_mark.column + 1
        return self.position(loc)


def _child(node: yaml.Node, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == part:
                return value_node  # type: ignore[no-any-return]
        # An unknown key: point at the key node itself.
        return None
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        return node.value[part]  # type: ignore[no-any-return]
    return None


def parse_yaml(path: str, text: str) -> YamlDocument:
    """Parse one YAML document with positions.

    Raises:
        YamlSourceError: the text is not a single, well-formed YAML document, or is
            empty, or uses constructs a manifest does not allow.
    """
    if not text.strip():
        raise YamlSourceError(
            Finding(path, 1, 1, "the file is empty: a wave manifest is a mapping")
        )
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        raise YamlSourceError(_finding_from_yaml_error(path, text, exc)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - every parser error carries marks
        raise YamlSourceError(Finding(path, 1, 1, f"not valid YAML: {exc}")) from None
    if root is None:
        raise YamlSourceError(
            Finding(path, 1, 1, "the file has no YAML document: a wave manifest is a mapping")
        )
    data = _Builder(path).build(root)
    return YamlDocument(path=path, data=data, root=root)


def _finding_from_yaml_error(path: str, text: str, exc: yaml.MarkedYAMLError) -> Finding:
    mark = exc.problem_mark or exc.context_mark
    if exc.context and exc.context.startswith("while parsing a flow") and exc.context_mark:
        # An unclosed [ or { is noticed lines later; the bracket is where to look.
        mark = exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or "malformed YAML"
    if "\t" in problem or "'\\t'" in problem or _tab_at(text, line, col):
        return Finding(
            path, line, col, "a tab character is used for indentation: YAML needs spaces"
        )
    if exc.problem == "but found another document":
        return Finding(
            path, line, col, "the file holds more than one YAML document: one wave per file"
        )
    context = f"{exc.context}, " if exc.context else ""
    return Finding(path, line, col, f"not valid YAML: {context}{problem}")


def _tab_at(text: str, line: int, col: int) -> bool:
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return False
    return "\t" in lines[line - 1][: max(col, 1)]


class _Builder:
    """Turns composed nodes into plain dicts, lists and scalars."""

    def __init__(self, path: str) -> None:
        self._path = path

    def _fail(self, node: yaml.Node, message: str) -> YamlSourceError:
        mark = node.start_mark
        return YamlSourceError(Finding(self._path, mark.line + 1, mark.column + 1, message))

    def build(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            tag = node.tag
            if tag == _STR:
                return node.value
            if tag in (_INT, _FLOAT, _BOOL, _NULL):
                return _SCALAR_CONSTRUCTOR.construct_object(node, deep=True)
            if tag == _TIMESTAMP:
                # Kept as text: pydantic parses it and insists on a time zone.
                return node.value
            raise self._fail(node, f"unsupported YAML tag {tag!r}")
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item) for item in node.value]
        if isinstance(node, yaml.MappingNode):
            return self._build_mapping(node)
        raise self._fail(node, "unsupported YAML node")  # pragma: no cover

    def _build_mapping(self, node: yaml.MappingNode) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                raise self._fail(
                    key_node,
                    "YAML merge keys ('<<') are not supported: put shared settings in 'defaults'",
                )
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                raise self._fail(key_node, f"keys must be strings, not {key_node.value!r}")
            key = key_node.value
            if key in first_seen:
                previous = first_seen[key].start_mark.line + 1
                raise self._fail(
                    key_node, f"duplicate key '{key}' (first defined on line {previous})"
                )
            first_seen[key] = key_node
            result[key] = self.build(value_node)
        return result
