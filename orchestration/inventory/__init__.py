"""``wavepilot import``: turn an inventory (CMF server list, MGN import CSV, Azure VM JSON)
into wave manifests; see docs/IMPORT.md."""
