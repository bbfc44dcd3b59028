"""Numbered schema revisions (0001_initial_schema.py, ...); never edit one that has shipped."""
