"""Beam composition of the webtext_pipeline stages (floor 3 of DESIGN.md)."""
