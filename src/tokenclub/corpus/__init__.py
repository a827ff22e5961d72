"""The accepted corpus: Parquet parts per upload, and the persistent dedup index in the database."""
