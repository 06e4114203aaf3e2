"""Tests of the session record: store, recorder thread and `records` CLI."""
