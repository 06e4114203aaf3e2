"""docs/INTERLOCKS.md is the catalogue as the code has it."""

from __future__ import annotations

from pathlib import Path

from sessionconsole.safety.catalogue_doc import render
from sessionconsole.safety.rules import CATALOGUE, RULES_BY_ID


def test_interlocks_doc_matches_the_code() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "INTERLOCKS.md"
    assert doc.read_text() == render(), "run `make docs` and commit docs/INTERLOCKS.md"


def test_every_rule_says_what_to_do_and_ids_are_unique() -> None:
    assert len(RULES_BY_ID) == len(CATALOGUE)
    for rule in CATALOGUE:
        assert rule.description.endswith(".") and rule.what_to_do.endswith(".")
