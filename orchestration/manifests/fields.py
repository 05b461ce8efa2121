"""Field types for manifests: each rule says, in its error, what a valid value looks like.

Patterns are also written into the JSON Schema so editors flag mistakes as people type.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from orchestration.manifests import aws_catalog


@dataclass(frozen=True, slots=True)
class TextRule:
    """Pydantic metadata: the string must match ``pattern``; the error says what is expected.

    The pattern is also written into the JSON Schema, so editors check it as people type.
    """

    pattern: str
    what: str
    example: str
    ignore_case: bool = False
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        flags = re.IGNORECASE if self.ignore_case else 0
        object.__setattr__(self, "_compiled", re.compile(self.pattern, flags))

    def matches(self, value: str) -> bool:
        return self._compiled.fullmatch(value) is not None

    def check(self, value: str) -> str:
        if not self._compiled.fullmatch(value):
            raise ValueError(f"{shown(value)} is not {self.what} (for example {self.example!r})")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if not self.ignore_case:  # JSON Schema patterns have no case-insensitive flag
            json_schema["pattern"] = f"^(?:{self.pattern})$"
        return json_schema


SHOWN_MAX = 300  # an Azure resource ID is shown whole


def shown(value: str) -> str:
    """A value as an error quotes it: ``repr`` (control, bidi and other invisible characters
    escaped, never raw) and cut short, so a hostile value cannot flood or forge a message."""
    if len(value) <= SHOWN_MAX:
        return repr(value)
    return f"{value[:SHOWN_MAX]!r}... ({len(value)} characters)"


# Characters that are never text: controls (C0, DEL, C1), invisible formatting (bidi
# overrides and isolates, zero-width characters, the BOM), lone surrogates, line and
# paragraph separators. They reach Slack, logs, EC2 tags and DynamoDB, where they hide or
# reorder what people read (U+202E shows 'exe.txt' as 'txt.exe'), or make AWS refuse the call.
_NOT_TEXT_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def unprintable_character(value: str) -> str | None:
    """The first character of ``value`` that is not printable text, described, or None."""
    for index, char in enumerate(value):
        category = unicodedata.category(char)
        if (
            category in _NOT_TEXT_CATEGORIES
            or (0xFDD0 <= ord(char) <= 0xFDEF)
            or (ord(char) & 0xFFFE == 0xFFFE)
        ):
            unnamed = {"Cc": "a control character", "Cs": "a surrogate"}.get(
                category, "a noncharacter"
            )
            name = unicodedata.name(char, unnamed)
            return f"U+{ord(char):04X} ({name}) at position {index + 1}"
    return None


def escape_unprintable(text: str) -> str:
    """``text`` with every character ``unprintable_character`` finds escaped (``\\u202e``)."""
    if unprintable_character(text) is None:
        return text
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if unprintable_character(char) is None:
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def check_printable(value: str) -> str:
    """Refuse control and invisible formatting characters (see ``unprintable_character``)."""
    found = unprintable_character(value)
    if found is not None:
        raise ValueError(
            f"{shown(value)} contains a control or invisible character, {found}: "
            "write printable text only"
        )
    return value


PrintableText = Annotated[str, AfterValidator(check_printable)]

_HEX_ID = "(?:[0-9a-f]{8}|[0-9a-f]{17})"

AwsAccountId = Annotated[
    str,
    TextRule(r"\d{12}", "an AWS account ID of 12 digits", "123456789012"),
    Field(description="Target AWS account ID, 12 digits. Quote it in YAML so it stays a string."),
]
SubnetId = Annotated[
    str,
    TextRule(
        rf"subnet-{_HEX_ID}", "a subnet ID ('subnet-' and 8 or 17 hex digits)", "subnet-0a1b2c3d"
    ),
    Field(description="VPC subnet ID."),
]
SecurityGroupId = Annotated[
    str,
    TextRule(rf"sg-{_HEX_ID}", "a security group ID ('sg-' and 8 or 17 hex digits)", "sg-0a1b2c3d"),
    Field(description="VPC security group ID."),
]
SOURCE_SERVER_ID = TextRule(
    r"s-[0-9a-zA-Z]{17}",
    "an MGN source server ID ('s-' and 17 characters)",
    "s-1234567890abcdef0",
)
SourceServerId = Annotated[
    str,
    SOURCE_SERVER_ID,
    Field(description="Explicit MGN source server ID; the most reliable way to find the server."),
]
USER_PROVIDED_ID = TextRule(
    r"[A-Za-z0-9._:/=+@-]{1,128}",
    "a userProvidedID (1 to 128 letters, digits or ._:/=+@-)",
    "billing-web-01",
)
UserProvidedId = Annotated[
    str,
    USER_PROVIDED_ID,
    Field(description="The userProvidedID given when the MGN replication agent was installed."),
]
DiskSizesGiB = Annotated[
    list[Annotated[int, Field(ge=1, le=65536)]],
    Field(
        min_length=1,
        max_length=64,
        description=(
            "The source VM's disk sizes in GiB (1 to 64 disks, each 1 to 65536 GiB), for the "
            "rehearsal's replication estimate. MGN reads the disks from its agent; this is not "
            "published and not part of the VM's revision."
        ),
    ),
]
Hostname = Annotated[
    str,
    TextRule(
        r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
        "a hostname or FQDN",
        "web-01.contoso.local",
    ),
    Field(
        description="Hostname or FQDN the MGN agent reported; must match exactly one source server."
    ),
]
_AZURE_VM_ID = (
    r"/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"/resourceGroups/[-\w.()]{1,90}"
    r"/providers/Microsoft\.Compute/virtualMachines/[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
)
AZURE_VM_RESOURCE_ID = TextRule(
    _AZURE_VM_ID,
    "an Azure VM resource ID",
    "/subscriptions/<guid>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<name>",
    ignore_case=True,
)
AzureVmResourceId = Annotated[
    str,
    AZURE_VM_RESOURCE_ID,
    Field(
        description=(
            "Azure VM resource ID: /subscriptions/<guid>/resourceGroups/<rg>/providers/"
            "Microsoft.Compute/virtualMachines/<name>. Compared case-insensitively, as Azure does."
        )
    ),
]
TargetVmName = Annotated[
    str,
    TextRule(
        r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}",
        "a target VM name (1 to 63 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit)",
        "billing-web-01",
    ),
    Field(description="Name of the EC2 instance (its Name tag). Unique per target account."),
]
_SLUG = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
WaveName = Annotated[
    str,
    TextRule(_SLUG, "a wave name (lowercase letters, digits and '-')", "wave-1"),
    Field(description="Wave name; equal to the file name without .yaml."),
]
AppName = Annotated[
    str,
    TextRule(_SLUG, "an application name (lowercase letters, digits and '-')", "billing-app"),
    Field(description="Application name; unique within its wave."),
]
EnvironmentName = Annotated[
    str,
    TextRule(
        r"[a-z][a-z0-9-]{0,31}", "an environment name (lowercase letters, digits and '-')", "prod"
    ),
    Field(description="Environment the wave belongs to, such as dev, test or prod."),
]
IamInstanceProfileName = Annotated[
    str,
    TextRule(
        r"[A-Za-z0-9_+=,.@-]{1,128}",
        "an IAM instance profile name (1 to 128 ASCII letters, digits or _+=,.@-)",
        "app-server-profile",
    ),
    Field(description="Name of the IAM instance profile attached to the launched instance."),
]
SlackChannelId = Annotated[
    str,
    TextRule(
        r"[CG][A-Z0-9]{8,}",
        "a Slack channel ID (C... or G..., from the channel's details)",
        "C0123456789",
    ),
    Field(description="ID of the Slack channel that gets this wave's migration threads."),
]
SlackUserId = Annotated[
    str,
    TextRule(r"[UW][A-Z0-9]{8,}", "a Slack user ID (U... or W...)", "U0123456789"),
    Field(description="Slack user ID."),
]
SlackPrincipalId = Annotated[
    str,
    TextRule(
        r"[UW][A-Z0-9]{8,}|S[A-Z0-9]{8,}",
        "a Slack user ID (U... or W...) or user-group ID (S...)",
        "U0123456789",
    ),
    Field(description="Slack user ID (U..., W...) or user-group ID (S...)."),
]
FreeText = Annotated[str, AfterValidator(check_printable), Field(max_length=500)]
UrlPath = Annotated[
    str,
    TextRule(r"/[^\s]*", "a URL path starting with '/'", "/healthz"),
    AfterValidator(check_printable),
    Field(description="Path of the HTTP check.", max_length=1024),
]


def _instance_type(value: str) -> str:
    known = aws_catalog.ec2_instance_types()
    if value not in known:
        # No instance type is longer than 32 characters; do not compare a flood with them.
        close = difflib.get_close_matches(value, sorted(known), n=1) if len(value) <= 64 else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{shown(value)} is not an EC2 instance type{hint}")
    return value


@cache
def _instance_type_schema() -> dict[str, Any]:
    return {"enum": sorted(aws_catalog.ec2_instance_types())}


InstanceType = Annotated[
    str,
    AfterValidator(_instance_type),
    Field(
        description="EC2 instance type, checked against botocore's EC2 model.",
        json_schema_extra=lambda schema: schema.update(_instance_type_schema()),
    ),
]


def _region(value: str) -> str:
    if value not in aws_catalog.mgn_regions():
        raise ValueError(f"{value!r} is not an AWS Region where MGN is available")
    return value


AwsRegion = Annotated[
    str,
    AfterValidator(_region),
    Field(
        description="Target AWS Region; one where MGN is available.",
        json_schema_extra=lambda schema: schema.update({"enum": sorted(aws_catalog.mgn_regions())}),
    ),
]


def _callback_url(value: str) -> str:
    parts = urlsplit(value)
    if not value.startswith("https://"):
        raise ValueError(f"{value!r} is not an https URL: callbacks are sent over https only")
    if not parts.hostname:
        raise ValueError(f"{value!r} has no host")
    if parts.username or parts.password:
        raise ValueError("callback URLs must not carry credentials: they would be logged")
    return check_printable(value)


CallbackUrl = Annotated[
    str,
    AfterValidator(_callback_url),
    Field(
        description="https URL that receives HMAC-signed status events.",
        max_length=2048,
        json_schema_extra={"pattern": "^https://", "format": "uri"},
    ),
]

MAX_TAGS = 50


def check_tags(value: dict[str, str]) -> dict[str, str]:
    """AWS tag rules; returns the tags sorted by key so equal tag sets compare and hash equal."""
    problems = []
    for key, tag_value in value.items():
        if not 1 <= len(key) <= 128:
            problems.append(f"tag key {shown(key)} must be 1 to 128 characters")
        if key.lower().startswith("aws:"):
            problems.append(f"tag key {shown(key)} uses the reserved 'aws:' prefix")
        if len(tag_value) > 256:
            problems.append(f"the value of tag {shown(key)} is longer than 256 characters")
        for what, text in (
            (f"tag key {shown(key)}", key),
            (f"the value of tag {shown(key)}", tag_value),
        ):
            found = unprintable_character(text)
            if found is not None:
                problems.append(f"{what} contains a control or invisible character, {found}")
    if len(value) > MAX_TAGS:
        problems.append(f"{len(value)} tags: AWS allows at most {MAX_TAGS} per resource")
    if problems:
        raise ValueError("; ".join(problems))
    return dict(sorted(value.items()))


Tags = Annotated[
    dict[str, str],
    AfterValidator(check_tags),
    Field(
        description="AWS tags: keys 1-128 characters without the 'aws:' prefix, values up to 256.",
        json_schema_extra={
            "propertyNames": {"minLength": 1, "maxLength": 128, "pattern": "^(?![aA][wW][sS]:)"},
            "additionalProperties": {"type": "string", "maxLength": 256},
            "maxProperties": MAX_TAGS,
        },
    ),
]
