"""Differential privacy for releases: exact integer noise samplers (CKS20) fed only by the OS CSPRNG."""
