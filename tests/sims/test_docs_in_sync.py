"""docs/SIMULATORS.md shows tests/sims/test_docs_example.py verbatim, so the example cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCED_PYTHON = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def lines_of(text: str) -> list[str]:
    """The text's lines without trailing whitespace (the only normalisation allowed)."""
    return [line.rstrip() for line in text.rstrip().splitlines()]


def test_the_docs_example_is_the_example_test_file() -> None:
    doc = (ROOT / "docs" / "SIMULATORS.md").read_text(encoding="utf-8")
    section = doc[doc.index("## A complete example") :]
    block = FENCED_PYTHON.search(section)
    assert block is not None, "no ```python block under '## A complete example'"
    test_file = (ROOT / "tests" / "sims" / "test_docs_example.py").read_text(encoding="utf-8")
    assert lines_of(block.group(1)) == lines_of(test_file)
