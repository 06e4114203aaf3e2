"""Issue #6, done when: a session run on the demo produces a record that verifies, exports to
all four formats (FHIR validated) and shows the right billing units.

A scripted session on the demo stack (all three units, real processes) with pain scores,
a technique, attended stimulation and ultrasound; then the `records` commands a clinic would
run, each as a process on the resulting database. (Surviving a SIGKILL of the controller is
tested in tests/core/test_controller_us1.py and tests/record/test_recorder.py.)
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle

from tests.scripted.support import session_run

SCRIPT = """
[[step]]
do = "pain"
when = "before"
score = 7

[[step]]
do = "configure"
device = "us1"
args = { frequency_khz = 1000, intensity_w_cm2 = 1.0, duty_pct = 50, time_s = 300 }

[[step]]
do = "configure"
device = "es2"
channel = 1
[step.args]
mode = "SYM"
freq_hz = 100
pw_us = 200
ramp_s = 1
amplitude_ma = 10.0
attended = true

[[step]]
do = "start"
device = "us1"

[[step]]
do = "start"
device = "es2"
channel = 1

[[step]]
do = "technique"
technique = "myofascial_release"
region = "lumbar"
side = "left"
duration_s = 1.0

[[step]]
do = "expect"
output_on = "us1"
within_s = 3

[[step]]
do = "wait"
s = 1.5

[[step]]
do = "pain"
when = "after"
score = 4
"""


def records(*args: str) -> subprocess.CompletedProcess[str]:
    """`sessionconsole records ARGS` as a process."""
    return subprocess.run(
        [sys.executable, "-m", "sessionconsole.cli", "records", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_demo_session_verifies_exports_everywhere_and_bills(tmp_path: Path) -> None:
    script = tmp_path / "session.toml"
    script.write_text(SCRIPT)
    db = tmp_path / "demo.db"
    run = session_run("--demo", "--script", str(script), "--db", str(db), "--patient", "PT-0042")
    assert run.code == 0, run.stderr
    assert run.summary is not None and run.summary["exit_status"] == 0

    verified = records("verify", "--db", str(db))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "OK" in verified.stdout

    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("json", "fhir", "html"):
        target = out / f"session.{fmt}"
        done = records("export", "last", "--db", str(db), "--format", fmt, "-o", str(target))
        assert done.returncode == 0, done.stderr
    csv_dir = out / "csv"
    done = records("export", "last", "--db", str(db), "--format", "csv", "-o", str(csv_dir))
    assert done.returncode == 0, done.stderr

    whole = json.loads((out / "session.json").read_text())
    kinds = {e["kind"] for e in whole["entries"]}
    assert {"session_start", "pain_score", "technique", "output_start", "session_end"} <= kinds
    raw = json.loads((out / "session.fhir").read_text())
    Bundle.model_validate(raw)  # R4B models: the closest to R4 that fhir.resources ships
    resources = [e["resource"] for e in raw["entry"]]
    types = {r["resourceType"] for r in resources}
    assert {"Encounter", "Procedure", "Observation", "Device", "Patient"} <= types
    cpt = {
        c["code"]
        for r in resources
        if r["resourceType"] == "Procedure"
        for c in r["code"]["coding"]
        if c["system"] == "http://www.ama-assn.org/go/cpt"
    }
    assert {"97035", "97032", "97140"} <= cpt  # ultrasound, attended e-stim, manual therapy
    html = (out / "session.html").read_text()
    assert "PT-0042" in html and "<svg" in html
    with (csv_dir / "techniques.csv").open() as fh:
        assert [row["technique"] for row in csv.DictReader(fh)] == ["myofascial_release"]

    bill = records("bill", "last", "--db", str(db))
    assert bill.returncode == 0, bill.stderr
    # A few seconds of treatment: every timed code has 0 whole minutes, so 0 units (8-min rule).
    assert "97035" in bill.stdout and "97032" in bill.stdout and "97140" in bill.stdout
    assert "total timed minutes: 0" in bill.stdout.lower() or " 0 units" in bill.stdout
