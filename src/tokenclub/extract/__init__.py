"""Format readers that turn uploaded files into text documents (see document.py for the contract)."""
