"""Headless scripted sessions (`sessionconsole session run`): a TOML script drives the console
through its local API, as a tester or CI would, and a summary says what happened."""
