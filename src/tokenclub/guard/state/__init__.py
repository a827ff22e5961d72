"""The guard's state kept in the database: fragments, coverage, tallies, events and releases."""
