"""`records export`: every format from real record files written through the Recorder."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from sessionconsole.record.chain import entry_hash
from sessionconsole.record.clinical_codes import CPT_SYSTEM, LOINC_SYSTEM, SNOMED_SYSTEM
from sessionconsole.record.store import SessionStore
from tests.record.export_support import NAME, PSEUDONYM, close_interrupted, write_session
from tests.record.test_records_cli import run

# R4 value sets the models do not check (fhir.resources validates structure, not codes).
PROCEDURE_STATUS = {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed"}
ENCOUNTER_STATUS = {"planned", "arrived", "in-progress", "finished", "cancelled", "unknown"}


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A record holding one completed combined session."""
    db = tmp_path_factory.mktemp("export") / "record.db"
    return db, write_session(db)


def export(db: Path, fmt: str, out: Path, session: str = "last") -> Path:
    assert run("records", "export", session, "--db", str(db), "--format", fmt, "-o", str(out)) == 0
    return out


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_json_round_trips_every_entry_with_its_hash(record: tuple[Path, str], tmp_path: Path):
    db, sid = record
    doc = json.loads(export(db, "json", tmp_path / "s.json", sid[:8]).read_text("utf-8"))
    with SessionStore(db, create=False) as store:
        stored = [entry.as_dict() for entry in store.entries(sid)]
    assert doc["session"]["session_id"] == sid
    assert doc["session"]["exit_status"] == "completed"
    assert doc["entries"] == stored
    for entry in doc["entries"]:  # re-verifiable away from the console
        fields = {k: v for k, v in entry.items() if k != "hash"}
        assert entry_hash(**fields) == entry["hash"]


def test_csv_one_file_per_stream_plus_techniques_and_alarms(
    record: tuple[Path, str], tmp_path: Path
):
    db, _ = record
    folder = export(db, "csv", tmp_path / "new" / "csv")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["alarms.csv", "gaps.csv", "stream_es2.csv", "stream_us1.csv", "techniques.csv"]
    with (folder / "stream_us1.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 50 * 60
    assert "head_temperature_c [Cel]" in rows[0]
    assert "intensity_measured_w_cm2 [W/cm2]" in rows[0]
    assert rows[0]["time_s"] == "5.000" and rows[1]["time_s"] == "5.020"
    assert rows[0]["wall_utc"] == "2026-11-03T10:00:05.000+00:00"
    assert rows[600]["output_active"] == "True"
    assert float(rows[600]["intensity_measured_w_cm2 [W/cm2]"]) == 0.98
    with (folder / "techniques.csv").open(newline="", encoding="utf-8") as fh:
        techniques = list(csv.DictReader(fh))
    assert [(t["technique"], t["region"], t["side"]) for t in techniques] == [
        ("deep_tissue", "knee", "right"),
        ("trigger_point", "upper_back", "left"),
    ]
    assert float(techniques[0]["duration_s"]) == 62.0
    with (folder / "alarms.csv").open(newline="", encoding="utf-8") as fh:
        alarms = list(csv.DictReader(fh))
    assert [a["change"] for a in alarms] == ["raised", "acknowledged"]
    assert alarms[0]["message"] == "head <hot>"


def test_fhir_bundle_validates_as_r4b_with_codes_and_systems(
    record: tuple[Path, str], tmp_path: Path
):
    db, sid = record
    bundle = json.loads(export(db, "fhir", tmp_path / "b.json").read_text("utf-8"))
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    (encounter,) = resources(bundle, "Encounter")
    assert encounter["status"] == "finished" and encounter["identifier"][0]["value"] == sid
    (patient,) = resources(bundle, "Patient")
    assert patient["identifier"][0]["value"] == PSEUDONYM and "name" not in patient
    assert NAME not in json.dumps(bundle)
    assert {d["identifier"][0]["value"] for d in resources(bundle, "Device")} == {"us1", "es2"}

    procedures = resources(bundle, "Procedure")
    assert {p["status"] for p in procedures} <= PROCEDURE_STATUS
    codes = {p["code"]["coding"][0]["code"]: p for p in procedures if "coding" in p["code"]}
    assert set(codes) == {"97035", "97032", "97124", "97140"}  # US, attended e-stim, techniques
    assert all(p["code"]["coding"][0]["system"] == CPT_SYSTEM for p in codes.values())
    knee = codes["97124"]["bodySite"][0]
    assert knee["coding"][0] == {
        "system": SNOMED_SYSTEM,
        "code": "72696002",
        "display": "Knee region structure",
    }
    assert knee["text"] == "knee (right)"
    assert codes["97140"]["bodySite"][0] == {"text": "upper back (left)"}  # not coded: text only

    observations = resources(bundle, "Observation")
    pain = [
        o for o in observations if o["code"].get("coding", [{}])[0].get("system") == LOINC_SYSTEM
    ]
    assert [(o["code"]["coding"][0]["code"], o["valueInteger"]) for o in pain] == [
        ("72514-3", 6),
        ("72514-3", 3),
    ]
    quantities = {
        o["code"]["text"]: o["valueQuantity"] for o in observations if "valueQuantity" in o
    }
    assert quantities["ultrasound delivered energy"]["code"] == "J"
    assert quantities["ultrasound delivered energy"]["value"] == pytest.approx(160, abs=1)
    assert quantities["ultrasound delivered dose"]["code"] == "J/cm2"
    assert quantities["ultrasound output on-time"]["value"] == pytest.approx(40, abs=0.1)
    assert quantities["ultrasound setting intensity_w_cm2"]["code"] == "W/cm2"
    assert quantities["stimulation peak amplitude_measured_ma"]["code"] == "mA"
    assert all(q["system"] == "http://unitsofmeasure.org" for q in quantities.values())
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    for proc in procedures:
        assert proc["subject"]["reference"] in full_urls


class _Collector(HTMLParser):
    """Collects the text and the tags of an HTML document (a parse check)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained_escaped_and_names_no_one(
    record: tuple[Path, str], tmp_path: Path
):
    db, _ = record
    html = export(db, "html", tmp_path / "r.html").read_text("utf-8")
    assert PSEUDONYM in html and "T-01" in html
    assert NAME not in html and "patient_name" not in html
    assert "head &lt;hot&gt;" in html and "knee &lt;better&gt; &amp; calm" in html
    assert "Room &lt;2&gt; &amp; co" in html
    assert "@media print" in html
    assert "http" not in html.replace("http://www.w3.org/2000/svg", "")  # no external assets
    parser = _Collector()
    parser.feed(html)
    text = " ".join(parser.text)
    assert "NPRS before: 6" in " ".join(text.split()).replace(" / 10", "")
    assert parser.tags.count("svg") == 3  # US intensity, US head temperature, ES amplitude
    for svg in html.split("<svg")[1:]:
        root = ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.findall(".//{http://www.w3.org/2000/svg}polyline")
    assert "time (min)" in html and "W/cm2" in html and "°C" in html


def test_an_interrupted_session_exports_in_every_format(tmp_path: Path):
    db = tmp_path / "killed.db"
    sid = write_session(db, seconds=20, interrupted=True)
    assert close_interrupted(db) == [sid]
    bundle = json.loads(export(db, "fhir", tmp_path / "b.json").read_text("utf-8"))
    Bundle.model_validate(bundle)
    techniques = [p for p in resources(bundle, "Procedure") if "performedPeriod" in p]
    unended = [p for p in techniques if "end" not in p["performedPeriod"]]
    assert [p["status"] for p in unended] == ["stopped"]
    assert {p["status"] for p in resources(bundle, "Procedure")} <= PROCEDURE_STATUS
    assert resources(bundle, "Encounter")[0]["status"] in ENCOUNTER_STATUS
    doc = json.loads(export(db, "json", tmp_path / "s.json").read_text("utf-8"))
    assert doc["session"]["exit_status"] == "interrupted"
    html = export(db, "html", tmp_path / "r.html").read_text("utf-8")
    assert "interrupted" in html and "not ended" in html
    folder = export(db, "csv", tmp_path / "csv")
    assert (folder / "techniques.csv").read_text("utf-8").count("trigger_point") == 1


def test_html_and_json_go_to_stdout_without_o(
    record: tuple[Path, str], capsys: pytest.CaptureFixture[str]
):
    db, sid = record
    assert run("records", "export", "last", "--db", str(db), "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)["session"]["session_id"] == sid
    assert run("records", "export", "last", "--db", str(db), "--format", "html") == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ffff", "--format", "json"], "error: no session id starts with 'ffff'"),
        (["last", "--format", "csv"], "error: csv export writes several files"),
        (["last", "--format", "json", "-o", "/nonexistent-dir/x.json"], "error: cannot write"),
    ],
)
def test_errors_are_one_clear_line_and_exit_2(
    record: tuple[Path, str], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
):
    db, _ = record
    assert run("records", "export", *argv, "--db", str(db)) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_missing_database_and_a_bad_format_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    missing = tmp_path / "none.db"
    assert run("records", "export", "last", "--db", str(missing), "--format", "html") == 2
    assert capsys.readouterr().err == f"error: no record database at {missing}\n"
    assert not missing.exists()
    with pytest.raises(SystemExit) as exit_:
        run("records", "export", "last", "--db", str(missing), "--format", "pdf")
    assert exit_.value.code == 2
    assert "invalid choice: 'pdf'" in capsys.readouterr().err


def test_an_unwritable_csv_folder_is_one_clear_line(
    record: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    db, _ = record
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    argv = ("records", "export", "last", "--db", str(db), "--format", "csv", "-o", str(blocker))
    assert run(*argv) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write {blocker}")
