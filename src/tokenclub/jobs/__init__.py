"""The durable ingest job queue in the database and the workers that drain it."""
