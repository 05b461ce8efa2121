"""A migration's identity and a request's revision: what names, keys and deduplicates it.

Beside the message (:mod:`orchestration.migration_request`), not in the manifest validator,
so that every Lambda reading a request computes them without loading YAML or the validator;
the validator and ``wavepilot publish`` use the same functions.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestration.manifests.model import EffectiveVm

REVISION_LENGTH = 16


def migration_id(wave: str, azure_resource_id: str) -> str:
    """Stable ID of migrating one source VM in one wave (Azure IDs are case-insensitive)."""
    digest = hashlib.sha256(f"{wave}\n{azure_resource_id.lower()}".encode()).hexdigest()
    return f"mig-{digest[:16]}"


def revision_of(canonical_json: str) -> str:
    """The revision of a canonical JSON text: 16 hex of its SHA-256."""
    return hashlib.sha256(canonical_json.encode()).hexdigest()[:REVISION_LENGTH]


def vm_revision(vm: EffectiveVm) -> str:
    """Hash of an effective VM: equal effective VMs give equal revisions, on any machine.

    pydantic's JSON is canonical here: fields in model order, tags sorted by key.
    """
    return revision_of(vm.model_dump_json())
