"""Textual terminal UI; talks to the controller only through api/."""
