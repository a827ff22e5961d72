"""Detection at request time: pure scans of prompts and replies in every view, and the
arithmetic of fragments and coverage."""
