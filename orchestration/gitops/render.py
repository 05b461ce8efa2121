"""Render a plan as Markdown (jinja2) for pull request comments and job summaries."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jinja2

from orchestration.gitops.plan import Plan
from orchestration.manifests.findings import Severity

# GitHub refuses comment bodies over 65,536 characters; keep room for a marker and a verdict.
GITHUB_COMMENT_LIMIT = 65_536
PLAN_MARKDOWN_BUDGET = GITHUB_COMMENT_LIMIT - 1_536


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestration", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, not HTML; values pass through the `md` filter
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _markdown_cell
    env.filters["value"] = _value_cell
    return env


def _markdown_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (no pipes or line breaks, no HTML)."""
    return (
        str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")
    )


def _value_cell(value: Any) -> str:
    if value is None:
        return "_(none)_"
    shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    cell = _markdown_cell(shown).replace("`", "'")
    return f"`{cell}`"


def render_markdown(plan: Plan, *, budget: int = PLAN_MARKDOWN_BUDGET) -> str:
    """The plan in Markdown; summarised when the full text would not fit ``budget``."""
    full = _render(plan, detail=True, full_length=0, max_findings=200)
    if len(full) <= budget:
        return full
    summary = _render(plan, detail=False, full_length=len(full), max_findings=50)
    if len(summary) <= budget:
        return summary
    return _render(plan, detail=False, full_length=len(full), max_findings=5)


def render_full_markdown(plan: Plan) -> str:
    """Everything, for the job summary (which has a 1 MiB limit)."""
    return _render(plan, detail=True, full_length=0, max_findings=10_000)


def _render(plan: Plan, *, detail: bool, full_length: int, max_findings: int) -> str:
    template = _environment().get_template("plan.md.j2")
    return template.render(
        plan=plan,
        totals=plan.totals,
        errors=[f for f in plan.findings if f.severity is Severity.ERROR],
        warnings=[f for f in plan.findings if f.severity is Severity.WARNING],
        detail=detail,
        full_length=full_length,
        max_findings=max_findings,
    )
