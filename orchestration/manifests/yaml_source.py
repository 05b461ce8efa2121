"""YAML documents that remember where every value came from.

PyYAML's C loader composes the node graph (fast); a small walker turns nodes into
plain Python values, rejecting what YAML silently accepts but a manifest must not
(duplicate keys, merge keys, non-string keys). The node graph is kept so that a
finding can be pinned to ``file:line:col`` afterwards, only when one is needed.

Before anything is composed, one pass over the parser's events (iterative, in C) holds
the text to the limits in :mod:`orchestration.manifests.limits` and refuses tags that
construct objects: the C composer recurses once per level of nesting (a document nested
100,000 deep crashes the interpreter) and every alias would be expanded by the walker (a
"billion laughs" file would grow without bound).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from orchestration.manifests.findings import Finding
from orchestration.manifests.limits import LIMITS, ManifestLimits

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_YAML_TAG_PREFIX = "tag:yaml.org,2002:"

# Tags a manifest may write explicitly ('!!str 0755'); '!' is YAML's "plain string" tag.
# Every other tag (!!python/..., !!binary, !!set, !!omap, custom !tags) asks a loader to
# construct something a manifest never holds, and is refused.
_SCALAR_TAGS = frozenset({None, "!", _STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP})
_SEQUENCE_TAGS = frozenset({None, "!", _SEQ})
_MAPPING_TAGS = frozenset({None, "!", _MAP})

# Characters YAML does not allow in a stream (its "printable" set, YAML 1.1 section 5.1):
# C0 controls but tab and line breaks, DEL, C1 controls but NEL, and U+FFFE/U+FFFF.
_NOT_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

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


def parse_yaml(path: str, text: str, *, limits: ManifestLimits = LIMITS) -> YamlDocument:
    """Parse one YAML document with positions.

    Raises:
        YamlSourceError: the text is not a single, well-formed YAML document, or is
            empty, or uses constructs a manifest does not allow, or crosses a limit.
    """
    if not text.strip():
        raise YamlSourceError(
            Finding(path, 1, 1, "the file is empty: a wave manifest is a mapping")
        )
    unprintable = _NOT_PRINTABLE.search(text)
    if unprintable:
        line, col = _line_col(text, unprintable.start())
        code = ord(unprintable.group())
        raise YamlSourceError(
            Finding(
                path,
                line,
                col,
                f"control character U+{code:04X} is not allowed in YAML: a wave manifest is "
                "text (write it as an escape in a double-quoted string if you mean it)",
            )
        )
    try:
        _check_events(path, text, limits)
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


def _check_events(path: str, text: str, limits: ManifestLimits) -> None:
    """Hold the document to ``limits`` and to the allowed tags, in one pass over its events."""
    check = _LimitCheck(path, limits)
    scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
    sequence_start, mapping_start = yaml.SequenceStartEvent, yaml.MappingStartEvent
    sequence_end, mapping_end = yaml.SequenceEndEvent, yaml.MappingEndEvent
    events: Iterator[Any] = yaml.parse(text, Loader=_Loader)  # dispatched by exact class
    for event in events:
        kind = event.__class__
        if kind is scalar:
            check.scalar(event)
        elif kind is mapping_start:
            check.collection_start(event, _MAPPING_TAGS)
        elif kind is sequence_start:
            check.collection_start(event, _SEQUENCE_TAGS)
        elif kind is mapping_end or kind is sequence_end:
            check.collection_end()
        elif kind is alias:
            check.alias(event)
        elif kind is yaml.DocumentStartEvent:
            check.document_start(event)


class _LimitCheck:
    """What composing and building a document would cost, counted event by event.

    Nothing is composed: the count stops at the first event that crosses a limit, and
    that event's position is where the finding points.
    """

    def __init__(self, path: str, limits: ManifestLimits) -> None:
        self._path = path
        self._limits = limits
        self._depth = 0
        self._values = 0
        self._expanded = 0  # values with every alias replaced by what it names
        self._aliases = 0
        self._documents = 0
        # Expanded size of each anchored node; None while its collection is still open.
        self._anchored: dict[str, int | None] = {}
        # (depth, anchor, expanded count before it) of the anchored collections still open.
        self._open_anchors: list[tuple[int, str, int]] = []

    def _fail(self, event: yaml.Event, message: str) -> YamlSourceError:
        mark = event.start_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return YamlSourceError(Finding(self._path, line, col, message))

    def _count_value(self, event: yaml.NodeEvent) -> None:
        self._values += 1
        self._expanded += 1
        if self._values > self._limits.values:
            raise self._fail(
                event,
                f"more than {self._limits.values:,} values in one file (the limit): split the wave",
            )
        if self._expanded > self._limits.expanded_values:
            raise self._fail(event, _expanded_message(self._limits))

    def scalar(self, event: yaml.ScalarEvent) -> None:
        self._count_value(event)
        if len(event.value) > self._limits.scalar_chars:
            raise self._fail(
                event,
                f"a value of {len(event.value):,} characters: one value may have at most "
                f"{self._limits.scalar_chars:,} (the limit)",
            )
        if event.tag not in _SCALAR_TAGS:
            raise self._fail(event, _tag_message(event.tag))
        if event.anchor is not None:
            self._anchored[event.anchor] = 1

    def collection_start(
        self, event: yaml.CollectionStartEvent, allowed_tags: frozenset[str | None]
    ) -> None:
        self._count_value(event)
        self._depth += 1
        if self._depth > self._limits.depth:
            raise self._fail(
                event,
                f"more than {self._limits.depth} levels of nested lists and mappings "
                "(the limit): a wave manifest needs fewer than 10",
            )
        if event.tag not in allowed_tags:
            raise self._fail(event, _tag_message(event.tag))
        if event.anchor is not None:
            self._anchored[event.anchor] = None
            self._open_anchors.append((self._depth, event.anchor, self._expanded - 1))

    def collection_end(self) -> None:
        if self._open_anchors and self._open_anchors[-1][0] == self._depth:
            _, anchor, before = self._open_anchors.pop()
            self._anchored[anchor] = self._expanded - before
        self._depth -= 1

    def alias(self, event: yaml.AliasEvent) -> None:
        self._aliases += 1
        if self._aliases > self._limits.aliases:
            raise self._fail(
                event, f"more than {self._limits.aliases:,} aliases in one file (the limit)"
            )
        if event.anchor not in self._anchored:
            return  # an undefined alias: the composer reports it
        size = self._anchored[event.anchor]
        if size is None:
            raise self._fail(
                event,
                f"alias *{event.anchor} refers to a list or mapping that contains it: "
                "the value would be infinite",
            )
        self._expanded += size
        if self._expanded > self._limits.expanded_values:
            raise self._fail(
                event, f"{_expanded_message(self._limits)}: this alias copies {size:,}"
            )

    def document_start(self, event: yaml.DocumentStartEvent) -> None:
        self._documents += 1
        if self._documents > 1:
            raise self._fail(event, "the file holds more than one YAML document: one wave per file")


def _expanded_message(limits: ManifestLimits) -> str:
    return (
        f"with its aliases expanded, the file holds more than {limits.expanded_values:,} "
        "values (the limit)"
    )


def _tag_message(tag: str | None) -> str:
    shown = f"!!{tag[len(_YAML_TAG_PREFIX) :]}" if tag and tag.startswith(_YAML_TAG_PREFIX) else tag
    return (
        f"the YAML tag {shown} is not allowed: a wave manifest holds only strings, numbers, "
        "booleans, lists and mappings, and never constructs objects"
    )


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character, counting lines as editors do (by LF)."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


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
            if isinstance(key_node, yaml.SequenceNode | yaml.MappingNode):
                kind = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise self._fail(key_node, f"keys must be strings, not {kind}")
            if key_node.tag != _STR:
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
