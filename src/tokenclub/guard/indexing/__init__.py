"""Building the guard index: gram Bloom segments, the document table and the common-text
sketch, written while ingesting and on rebuild."""
