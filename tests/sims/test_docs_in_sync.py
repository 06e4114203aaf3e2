"""docs/SIMULATORS.md shows tests/sims/test_docs_example.py verbatim: the example cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from tempfile import NamedTemporaryFile

from device_sims.schedule import load_schedule
from device_sims.us1.app import schedule_rules as us1_schedule_rules

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


def test_the_docs_fault_schedule_is_accepted_as_written() -> None:
    doc = (ROOT / "docs" / "SIMULATORS.md").read_text(encoding="utf-8")
    block = re.search(r"^```toml\n(.*?)^```$", doc, re.DOTALL | re.MULTILINE)
    assert block is not None, "no ```toml fault schedule in docs/SIMULATORS.md"
    rules = us1_schedule_rules(2)  # the US-1's own rules, as `--count 2` builds them
    with NamedTemporaryFile("w", suffix=".toml") as fh:
        fh.write(block.group(1))
        fh.flush()
        schedule = load_schedule(Path(fh.name), rules)
    assert [t_s for t_s, _ in schedule] == [12.0, 20.0]
    assert schedule[1][1] == {"op": "set", "coupling_pct": 20, "unit": 1}
