"""tokenclub: a data cooperative platform for training a Korean LLM."""

__version__ = "0.1.0"
