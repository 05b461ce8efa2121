"""Write a wave draft as YAML, the way the example waves are written.

Hand-written emission, so the output is deterministic (an unchanged inventory gives the
same bytes) and keeps its comments. Every scalar is written plain only when PyYAML (the
validator's YAML 1.1 reader) reads it back as the same string; otherwise it is quoted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from orchestration.inventory.sources import FORMAT_NAMES, InventoryFormat, Origin
from orchestration.inventory.waves import LIFTABLE_SETTINGS, PLACEHOLDER, Setting, WaveDraft

SCHEMA_LINE = "# yaml-language-server: $schema=../wave.schema.json"
_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./=+@ -]*$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def scalar(value: str, *, timestamp: bool = False) -> str:
    """``value`` as a YAML scalar that reads back as this exact string (or timestamp)."""
    if timestamp and _TIMESTAMP.match(value) and _PLAIN.match(value.replace(":", "")):
        return value
    if _PLAIN.match(value) and not value.endswith(" ") and _reads_back(value):
        return value
    quoted = json.dumps(value, ensure_ascii=False)
    # JSON leaves these unescaped, but YAML reads them as line breaks inside quotes.
    return quoted.replace("\x85", "\\N").replace("\u2028", "\\L").replace("\u2029", "\\P")


_RESOLVER = yaml.SafeLoader("")
_STRING_TAG = "tag:yaml.org,2002:str"


def _reads_back(value: str) -> bool:
    """PyYAML (the validator's YAML 1.1 reader) resolves the plain scalar as a string.

    ``_PLAIN`` already keeps out YAML's indicators, so only the implicit types remain: a
    number, boolean, null, date or ``=`` would be read as something else.
    """
    resolved = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return bool(resolved == _STRING_TAG)


def _flow_list(values: tuple[str, ...] | tuple[int, ...]) -> str:
    return "[" + ", ".join(str(v) if isinstance(v, int) else scalar(v) for v in values) + "]"


def _flow_map(values: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{scalar(k)}: {scalar(v)}" for k, v in values.items()) + "}"


def _value(setting: Setting) -> str:
    if isinstance(setting.value, tuple):
        return _flow_list(setting.value)
    return scalar(setting.value)


@dataclass
class EmittedWave:
    """The file's text and, per placeholder, the line it is written on."""

    text: str
    # (vm origin or None for a wave key, manifest key) -> 1-based line
    lines: dict[tuple[Origin | None, str], int] = field(default_factory=dict)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.where: dict[tuple[Origin | None, str], int] = {}

    def add(self, text: str, comment: str | None = None) -> int:
        self.lines.append(f"{text}  # {comment}" if comment else text)
        return len(self.lines)

    def setting(
        self, indent: str, key: str, setting: Setting, owners: list[Origin | None], *, path: str
    ) -> None:
        line = self.add(f"{indent}{key}: {_value(setting)}", _comment(setting.comment))
        for owner in owners:
            self.where[(owner, path)] = line


def _comment(text: str | None) -> str | None:
    # A comment is one line of printable text: what is in it comes from the inventory.
    return None if text is None else "".join(c if c.isprintable() else "?" for c in text)


def emit_wave(
    draft: WaveDraft, *, source_file: str, inventory_format: InventoryFormat
) -> EmittedWave:
    out = _Writer()
    out.add(SCHEMA_LINE)
    out.add(
        f"# Written by `wavepilot import` from {_comment(source_file)} "
        f"({FORMAT_NAMES[inventory_format]}); importing again rewrites it."
    )
    if draft.to_fill:
        out.add(
            f"# Fill in each {PLACEHOLDER} (the inventory does not give it), "
            "then run `wavepilot validate`."
        )
    out.add(f"name: {scalar(draft.name)}")
    if draft.description:
        out.add(f"description: {scalar(draft.description)}")
    top = draft.top
    out.setting("", "environment", top["environment"], [None], path="environment")
    out.add("target:")
    out.setting("  ", "accountId", top["target.accountId"], [None], path="target.accountId")
    out.setting("  ", "region", top["target.region"], [None], path="target.region")
    out.add("cutoverWindow:")
    for key in ("start", "end"):
        setting = top[f"cutoverWindow.{key}"]
        line = out.add(
            f"  {key}: {scalar(str(setting.value), timestamp=True)}", _comment(setting.comment)
        )
        out.where[(None, f"cutoverWindow.{key}")] = line
    for key in ("slackChannel", "approvers", "operators"):
        out.setting("", key, top[key], [None], path=key)
    every_vm = [vm.origin for app in draft.applications for vm in app.vms]
    _defaults(out, "", draft.defaults, draft.default_tags, every_vm, block_tags=True)
    out.add("")
    out.add("applications:")
    for index, app in enumerate(draft.applications):
        if index:
            out.add("")
        out.add(f"  - name: {scalar(app.name)}")
        if app.description:
            out.add(f"    description: {scalar(app.description)}")
        _defaults(out, "    ", app.defaults, app.default_tags, [vm.origin for vm in app.vms])
        out.add("    vms:")
        for vm in app.vms:
            out.add("      - source:", _comment(f"from {vm.origin.described}"))
            for key, setting in vm.source.items():
                out.setting("          ", key, setting, [vm.origin], path=f"source.{key}")
            out.add(f"        targetVmName: {scalar(vm.target_vm_name)}")
            for key in LIFTABLE_SETTINGS:
                if key in vm.settings:
                    out.setting("        ", key, vm.settings[key], [vm.origin], path=key)
            if vm.tags:
                out.add(f"        tags: {_flow_map(vm.tags)}")
    return EmittedWave("\n".join(out.lines) + "\n", out.where)


def _defaults(
    out: _Writer,
    indent: str,
    settings: Mapping[str, Setting],
    tags: Mapping[str, str],
    owners: list[Origin],
    *,
    block_tags: bool = False,
) -> None:
    if not settings and not tags:
        return
    out.add(f"{indent}defaults:")
    for key in LIFTABLE_SETTINGS:
        if key in settings:
            out.setting(f"{indent}  ", key, settings[key], list(owners), path=key)
    if tags and block_tags:
        out.add(f"{indent}  tags:")
        for key, value in tags.items():
            out.add(f"{indent}    {scalar(key)}: {scalar(value)}")
    elif tags:
        out.add(f"{indent}  tags: {_flow_map(tags)}")
