"""Curation: small pure steps over Arrow batches of documents (see step.py for the contract)."""
