"""Profiles screen (biomedical staff, behind a PIN): list, view, validate, probe."""
