"""Deterministic workflow code: the incident workflow and the data it carries."""
