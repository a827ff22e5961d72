"""Running curation steps over batches: batching, the step list, and executors."""
