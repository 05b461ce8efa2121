"""How values are spelled on MGN's wire: ISO 8601 timestamps and durations, page tokens."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestration.local.mgn.errors import InvalidField, ValidationError


def format_timestamp(moment: datetime) -> str:
    """`ISO8601DatetimeString`: MGN's model wants `YYYY-MM-DDThh:mm:ss(.ffffff)Z`, not epochs."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}Z"


def parse_timestamp(text: str, *, field_name: str) -> datetime:
    """Parse a request timestamp (already pattern-checked against the model)."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as error:
        raise ValidationError(
            f"{field_name} is not an ISO 8601 timestamp: {text!r}",
            fields=(InvalidField(field_name, str(error)),),
        ) from error


def format_duration(span: timedelta) -> str:
    """`ISO8601DurationString` in whole seconds, e.g. PT0S, PT1H2M3S, P2DT4H."""
    total = max(int(span.total_seconds()), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time_part = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if value
    )
    if not days and not time_part:
        return "PT0S"
    day_part = f"{days}D" if days else ""
    return f"P{day_part}" + (f"T{time_part}" if time_part else "")


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page starts, tied to the filters it was issued for.

    Tokens are cursors on a stable key (creation order), not offsets, so items created between
    two pages neither repeat nor vanish from the pages still to come.
    """

    after: int
    filters_digest: str


def filters_digest(filters: Any) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def encode_page_token(cursor: PageCursor) -> str:
    raw = json.dumps({"after": cursor.after, "filters": cursor.filters_digest}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_page_token(token: str, *, expected_digest: str) -> PageCursor:
    """Decode a `nextToken`; a token from other filters, or garbage, is a ValidationException."""
    invalid = ValidationError(
        "nextToken is invalid or was issued for different filters",
        fields=(InvalidField("nextToken", "not a token this emulator issued for these filters"),),
    )
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        cursor = PageCursor(after=int(data["after"]), filters_digest=str(data["filters"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as error:
        raise invalid from error
    if cursor.filters_digest != expected_digest:
        raise invalid
    return cursor
