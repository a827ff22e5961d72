"""Who takes part: partners, customer accounts and their API keys."""
