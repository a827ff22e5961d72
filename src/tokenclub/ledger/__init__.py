"""The double-entry ledger: the single source of truth for credits, usage and payouts."""
