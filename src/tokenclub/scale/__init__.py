"""Curation on a Ray cluster: the Ray Data executor and the bulk near-duplicate job (`ray` extra)."""
