"""Training exports: snapshots of the corpus, shards in the formats trainers load, the model registry."""
