"""Offline audits: the extraction test and the red team, with the worst-case upstream's disguises."""
