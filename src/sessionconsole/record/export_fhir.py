"""FHIR R4 export: a collection Bundle built as plain JSON dicts (no FHIR library at runtime).

Resources: Patient (pseudonym identifier only, never a name), Encounter (the session), Device
per unit, Procedure per modality and per technique (CPT, SNOMED CT body site), Observation per
pain score (LOINC 72514-3), delivered energy/dose and key settings (UCUM). Ids are uuid5 of the
session id and the resource's role, so exporting twice gives the same Bundle.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any, Final

from sessionconsole.record.chain import JsonDict
from sessionconsole.record.clinical_codes import (
    BODY_SITE_SNOMED,
    CPT_ESTIM_ATTENDED,
    CPT_ESTIM_UNATTENDED,
    CPT_SYSTEM,
    CPT_ULTRASOUND,
    LOINC_PAIN_NPRS,
    LOINC_SYSTEM,
    SNOMED_SYSTEM,
    TECHNIQUE_CPT,
    UCUM,
    UCUM_SYSTEM,
    technique_label,
)
from sessionconsole.record.session_view import (
    ULTRASOUND,
    ModalitySummary,
    SessionView,
    TechniqueSpan,
)

PSEUDONYM_SYSTEM: Final = "urn:sessionconsole:patient-pseudonym"
SESSION_SYSTEM: Final = "urn:sessionconsole:session"
DEVICE_SYSTEM: Final = "urn:sessionconsole:device"
_OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_NAMESPACE: Final = uuid.UUID("6f1c3f0e-5b7a-4c1e-9a43-0d5e2b8f7a10")

# Settings keys worth an Observation, with the unit each is recorded in.
_SETTING_UNITS: Final = {
    "intensity_w_cm2": "W/cm2",
    "frequency_khz": "kHz",
    "duty_pct": "%",
    "time_s": "s",
    "freq_hz": "Hz",
    "pw_us": "us",
    "amplitude_ma": "mA",
}


class _Bundle:
    """Collects resources with deterministic urn:uuid full URLs."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.entries: list[JsonDict] = []

    def add(self, role: str, resource: JsonDict) -> str:
        """Add resource (its id derived from role); return the reference to it."""
        rid = str(uuid.uuid5(_NAMESPACE, f"{self.session_id}/{role}"))
        resource = {"resourceType": resource.pop("resourceType"), "id": rid, **resource}
        self.entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": resource})
        return f"urn:uuid:{rid}"


def fhir_bundle(view: SessionView) -> JsonDict:
    """The session as a FHIR R4 collection Bundle (a JSON-ready dict)."""
    bundle = _Bundle(view.session_id)
    patient = bundle.add("patient", _patient(view))
    encounter = bundle.add("encounter", _encounter(view, patient))
    context = {"subject": {"reference": patient}, "encounter": {"reference": encounter}}
    devices: dict[str, str] = {}
    for device, stream in view.streams.items():
        devices[device] = bundle.add(f"device/{device}", _device(device, stream.descriptor))
    for summary in view.modality_summaries():
        role = f"procedure/{summary.device}/{summary.modality}"
        procedure = bundle.add(role, _modality_procedure(view, summary, devices, context))
        for i, measured in enumerate(_modality_observations(view, summary, devices, procedure)):
            bundle.add(f"{role}/observation/{i}", {**measured, **context})
    for i, span in enumerate(view.techniques):
        bundle.add(f"technique/{i}", _technique_procedure(view, span, context))
    for i, pain in enumerate(view.pain_scores):
        label = {"before": "before treatment", "after": "after treatment"}.get(pain.when or "")
        obs: JsonDict = {
            "resourceType": "Observation",
            "status": "final",
            "category": [_category("survey")],
            "code": _codeable(LOINC_SYSTEM, *LOINC_PAIN_NPRS),
            **context,
            "effectiveDateTime": pain.wall,
            "valueInteger": pain.score,
        }
        if label is not None:
            obs["note"] = [{"text": f"NPRS {label}"}]
        bundle.add(f"pain/{i}", obs)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(_NAMESPACE, f"{view.session_id}/bundle")),
        "type": "collection",
        "timestamp": view.ended_wall or view.started_wall,
        "entry": bundle.entries,
    }


def _patient(view: SessionView) -> JsonDict:
    """A Patient known only by pseudonym: the record holds no name and the export adds none."""
    patient: JsonDict = {"resourceType": "Patient"}
    if view.patient_pseudonym is not None:
        patient["identifier"] = [{"system": PSEUDONYM_SYSTEM, "value": view.patient_pseudonym}]
    return patient


def _encounter(view: SessionView, patient: str) -> JsonDict:
    period = {"start": view.started_wall}
    if view.ended_wall is not None:
        period["end"] = view.ended_wall
    encounter: JsonDict = {
        "resourceType": "Encounter",
        "identifier": [{"system": SESSION_SYSTEM, "value": view.session_id}],
        "status": "in-progress" if view.ended_wall is None else "finished",
        "class": {"system": _ACT_CODE, "code": "AMB", "display": "ambulatory"},
        "subject": {"reference": patient},
        "period": period,
    }
    if view.therapist is not None:
        encounter["participant"] = [{"individual": {"display": view.therapist}}]
    if view.exit_status is not None:
        reason = f": {view.reason}" if view.reason else ""
        encounter["text"] = _narrative(f"Session {view.exit_status}{reason}")
    return encounter


def _device(device: str, descriptor: JsonDict) -> JsonDict:
    result: JsonDict = {
        "resourceType": "Device",
        "identifier": [{"system": DEVICE_SYSTEM, "value": device}],
        "status": "active",
        "deviceName": [{"name": device, "type": "user-friendly-name"}],
    }
    model, profile = descriptor.get("model"), descriptor.get("profile")
    if isinstance(model, str):
        result["modelNumber"] = model
    if isinstance(profile, str):
        result["deviceName"].append({"name": profile, "type": "other"})
    return result


def _modality_cpt(summary: ModalitySummary) -> tuple[str, str]:
    if summary.modality == ULTRASOUND:
        return CPT_ULTRASOUND
    return CPT_ESTIM_ATTENDED if summary.attended else CPT_ESTIM_UNATTENDED


def _procedure_status(view: SessionView, delivered: bool) -> str:
    if not delivered:
        return "not-done"
    if view.exit_status in (None, "completed"):
        return "completed" if view.exit_status else "in-progress"
    return "stopped"


def _modality_procedure(
    view: SessionView, summary: ModalitySummary, devices: dict[str, str], context: JsonDict
) -> JsonDict:
    procedure: JsonDict = {
        "resourceType": "Procedure",
        "status": _procedure_status(view, summary.on_time_s > 0),
        "code": _codeable(CPT_SYSTEM, *_modality_cpt(summary), text=summary.modality),
        **context,
        "focalDevice": [{"manipulated": {"reference": devices[summary.device]}}],
    }
    if summary.first_on_wall is not None and summary.last_on_wall is not None:
        procedure["performedPeriod"] = {
            "start": summary.first_on_wall,
            "end": summary.last_on_wall,
        }
    if view.therapist is not None:
        procedure["performer"] = [{"actor": {"display": view.therapist}}]
    region = summary.settings.get("region") or view.plan.get("region")
    if isinstance(region, str):
        procedure["bodySite"] = [_body_site(region, None)]
    return procedure


def _modality_observations(
    view: SessionView, summary: ModalitySummary, devices: dict[str, str], procedure: str
) -> list[JsonDict]:
    """Delivered on-time, energy, dose, peak output and the last settings of one modality."""
    values: list[tuple[str, float, str]] = [("output on-time", round(summary.on_time_s, 3), "s")]
    if summary.energy_j is not None:
        values.append(("delivered energy", round(summary.energy_j, 3), "J"))
    if summary.dose_j_cm2 is not None:
        values.append(("delivered dose", round(summary.dose_j_cm2, 4), "J/cm2"))
    if summary.peak is not None and summary.peak[2] in UCUM:
        key, peak, unit = summary.peak
        values.append((f"peak {key}", peak, unit or ""))
    for key, value in summary.settings.items():
        unit = _SETTING_UNITS.get(key)
        if unit is not None and isinstance(value, int | float) and not isinstance(value, bool):
            values.append((f"setting {key}", value, unit))
    when = summary.last_on_wall or view.ended_wall or view.started_wall
    return [
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [_category("procedure")],
            "code": {"text": f"{summary.modality} {name}"},
            "effectiveDateTime": when,
            "valueQuantity": {
                "value": value,
                "unit": unit,
                "system": UCUM_SYSTEM,
                "code": UCUM[unit],
            },
            "device": {"reference": devices[summary.device]},
            "partOf": [{"reference": procedure}],
        }
        for name, value, unit in values
    ]


def _technique_procedure(view: SessionView, span: TechniqueSpan, context: JsonDict) -> JsonDict:
    cpt = TECHNIQUE_CPT.get(span.technique)
    label = technique_label(span.technique)
    code = _codeable(CPT_SYSTEM, *cpt, text=label) if cpt else {"text": label}
    period = {"start": span.start_wall}
    if span.end_wall is not None:
        period["end"] = span.end_wall
    procedure: JsonDict = {
        "resourceType": "Procedure",
        "status": "completed" if span.end_wall is not None else "stopped",
        "code": code,
        **context,
        "performedPeriod": period,
        "bodySite": [_body_site(span.region, span.side)],
    }
    performer = span.operator or view.therapist
    if performer is not None:
        procedure["performer"] = [{"actor": {"display": performer}}]
    notes = [n for n in (f"pressure: {span.pressure}" if span.pressure else "", span.notes) if n]
    if notes:
        procedure["note"] = [{"text": n} for n in notes]
    return procedure


def _body_site(region: str, side: str | None) -> JsonDict:
    """SNOMED CT coded where the table has the region; otherwise text only."""
    words = region.replace("_", " ")
    text = f"{words} ({side})" if side else words
    coded = BODY_SITE_SNOMED.get(region)
    if coded is None:
        return {"text": text}
    return _codeable(SNOMED_SYSTEM, *coded, text=text)


def _codeable(system: str, code: str, display: str, text: str | None = None) -> JsonDict:
    concept: JsonDict = {"coding": [{"system": system, "code": code, "display": display}]}
    if text is not None:
        concept["text"] = text
    return concept


def _category(code: str) -> JsonDict:
    return {"coding": [{"system": _OBS_CATEGORY, "code": code}]}


def _narrative(text: str) -> dict[str, Any]:
    div = f'<div xmlns="http://www.w3.org/1999/xhtml">{escape(text)}</div>'
    return {"status": "generated", "div": div}
