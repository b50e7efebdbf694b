"""Importers: one module per export format, each turning one file into corpus messages."""
