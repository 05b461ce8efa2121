"""The GitOps front: manifests read from git revisions, plans and publishing, and each
published wave's progress shown back on GitHub."""
