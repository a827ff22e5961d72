"""Ingest: from a partner's files to accepted documents, a receipt and a ledger credit."""
