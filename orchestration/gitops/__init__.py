"""The GitOps front: manifests read from git revisions, plans and publishing."""
