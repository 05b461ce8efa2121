"""What a Lambda loads: the request queue's handler reads messages, not manifests."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

_LOADED = """
import json, sys
import orchestration.handlers.ingress_handler
print(json.dumps(sorted(sys.modules)))
"""


def test_the_ingress_handler_does_not_load_the_manifest_validator_or_yaml() -> None:
    # GIVEN a fresh interpreter (this one has imported everything already)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    # WHEN it imports the ingress handler, as Lambda does on a cold start
    loaded = set(
        json.loads(
            subprocess.run(
                [sys.executable, "-c", _LOADED],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    )

    # THEN neither the YAML validator nor a YAML parser is among the modules loaded
    assert "orchestration.handlers.ingress_handler" in loaded
    assert "orchestration.manifests.validation" not in loaded
    assert "orchestration.manifests.yaml_source" not in loaded
    assert not {name for name in loaded if name == "yaml" or name.startswith("yaml.")}
