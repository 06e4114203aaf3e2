"""The summary of a scripted session (`--json`): built from the session record once it ended.

Alarms and per-output on-time come from the record (`alarm`, `output_start`/`output_stop`
entries: what the console saw in telemetry), refusals and the failed expectation from the run.
The schema is `Summary.model_json_schema()`, documented in docs/SCRIPTED_SESSIONS.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sessionconsole.record.store import Entry, SessionStore
from sessionconsole.scripted.runner import RunResult

SchemaId = Literal["sessionconsole/scripted-session-summary/1"]
SCHEMA_ID: SchemaId = "sessionconsole/scripted-session-summary/1"
Result = Literal["passed", "expectation_failed", "invalid_input", "console_unavailable"]
EXIT_CODES: dict[str, int] = {
    "passed": 0,
    "expectation_failed": 1,
    "invalid_input": 2,
    "console_unavailable": 3,
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlarmOut(_Out):
    """An alarm raised during the session."""

    alarm_id: int
    rule_id: str
    priority: str
    device: str | None
    message: str
    raised_wall: str
    raised_t_s: float = Field(description="seconds since the session started")


class RefusalOut(_Out):
    """A step the console (or a simulator's test port) refused; the script went on."""

    step: int
    do: str
    device: str | None
    rule_id: str | None
    error: str


class OutputOut(_Out):
    """One output's time on (from telemetry, as recorded) and ultrasound energy and dose."""

    runs: int
    on_time_s: float
    energy_j: int | None = Field(default=None, description="ultrasound: the device's counter")
    treated_area_cm2: float | None = None
    dose_j_cm2: float | None = Field(default=None, description="energy_j / treated_area_cm2")


class DeviationOut(_Out):
    """A departure from the treatment plan in a guided session, from the record."""

    step: int
    kind: str = Field(description="skipped, shortened or settings_changed")
    operator: str
    reason: str


class FailedOut(_Out):
    """The expectation that did not hold."""

    step: int
    condition: str
    within_s: float
    observed: str


class Summary(_Out):
    """What a scripted session did and whether every expectation held."""

    schema_id: SchemaId = SCHEMA_ID
    script: str
    result: Result
    exit_status: int
    error: str | None = Field(default=None, description="invalid input / console unavailable")
    session_id: str | None = None
    session_exit_status: str | None = Field(default=None, description="as the record ends it")
    steps_total: int = 0
    steps_run: int = 0
    alarms: list[AlarmOut] = Field(default_factory=list)
    refused: list[RefusalOut] = Field(default_factory=list)
    outputs: dict[str, OutputOut] = Field(default_factory=dict)
    failed_expectation: FailedOut | None = None
    deviations: list[DeviationOut] = Field(default_factory=list, description="guided (--plan)")
    warnings: list[str] = Field(default_factory=list)


def error_summary(script: Path, result: Result, error: str) -> Summary:
    """A summary for a run that did not take place (exit 2 or 3)."""
    return Summary(script=str(script), result=result, exit_status=EXIT_CODES[result], error=error)


def build_summary(
    script: Path,
    db: Path,
    run: RunResult,
    steps_total: int,
    treated_area_cm2: dict[str, float],
    warnings: list[str],
) -> Summary:
    """The summary of a run that took place, reading the session's record from `db`."""
    result: Result = "passed" if run.failed is None else "expectation_failed"
    entries, session_exit = _read_record(db, run.session_id)
    start_ns = next((e.mono_ns for e in entries if e.kind == "session_start"), 0)
    end_ns = entries[-1].mono_ns if entries else 0
    failed = None
    if run.failed is not None:
        f = run.failed
        failed = FailedOut(
            step=f.step, condition=f.condition, within_s=f.within_s, observed=f.observed
        )
    return Summary(
        script=str(script),
        result=result,
        exit_status=EXIT_CODES[result],
        session_id=run.session_id or None,
        session_exit_status=session_exit,
        steps_total=steps_total,
        steps_run=run.steps_run,
        alarms=[_alarm(e, start_ns) for e in entries if _is_raise(e)],
        refused=[RefusalOut(**r.__dict__) for r in run.refused],
        outputs=_outputs(entries, end_ns, run.energy_j, treated_area_cm2),
        failed_expectation=failed,
        deviations=[
            DeviationOut(**{k: e.payload[k] for k in ("step", "kind", "operator", "reason")})
            for e in entries
            if e.kind == "deviation"
        ],
        warnings=warnings,
    )


def _read_record(db: Path, session_id: str) -> tuple[list[Entry], str | None]:
    if not session_id or not db.exists():
        return [], None
    store = SessionStore(db, create=False)
    try:
        info = next((s for s in store.sessions() if s.session_id == session_id), None)
        return store.entries(session_id), None if info is None else info.exit_status
    finally:
        store.close()


def _is_raise(e: Entry) -> bool:
    return e.kind == "alarm" and e.payload.get("change") == "raised"


def _alarm(e: Entry, start_ns: int) -> AlarmOut:
    p = e.payload
    return AlarmOut(
        alarm_id=int(p["alarm_id"]),
        rule_id=str(p["rule_id"]),
        priority=str(p["priority"]),
        device=None if p.get("device") is None else str(p["device"]),
        message=str(p["message"]),
        raised_wall=e.wall,
        raised_t_s=round((e.mono_ns - start_ns) / 1e9, 3),
    )


def _outputs(
    entries: list[Entry], end_ns: int, energy: dict[str, int], areas: dict[str, float]
) -> dict[str, OutputOut]:
    """On-time per output from output_start/output_stop pairs (an open run ends at the end)."""
    on_since: dict[str, int] = {}
    total_ns: dict[str, int] = {}
    runs: dict[str, int] = {}
    for e in entries:
        if e.kind not in ("output_start", "output_stop"):
            continue
        device = str(e.payload["device"])
        if e.kind == "output_start":
            on_since[device] = e.mono_ns
            runs[device] = runs.get(device, 0) + 1
        elif device in on_since:
            total_ns[device] = total_ns.get(device, 0) + e.mono_ns - on_since.pop(device)
    for device, since in on_since.items():
        total_ns[device] = total_ns.get(device, 0) + max(0, end_ns - since)
    out: dict[str, OutputOut] = {}
    for device in sorted(runs):  # outputs that ran at least once
        joules = energy.get(device)
        area = areas.get(device)
        dose = round(joules / area, 3) if joules is not None and area else None
        out[device] = OutputOut(
            runs=runs.get(device, 0),
            on_time_s=round(total_ns.get(device, 0) / 1e9, 3),
            energy_j=joules,
            treated_area_cm2=area,
            dose_j_cm2=dose,
        )
    return out
