"""HTML export: a self-contained, printable one-page session report with inline SVG plots.

No external assets (CSS inline, plots drawn by svg_plot). Every text that comes from the record
goes through html.escape. The patient appears only by pseudonym: keys that look like a name
(`*name*`) in meta or plan are never printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from sessionconsole.record.chain import JsonDict
from sessionconsole.record.clinical_codes import technique_label
from sessionconsole.record.session_view import (
    STIMULATION,
    ULTRASOUND,
    ModalitySummary,
    SessionView,
    Stream,
)
from sessionconsole.record.svg_plot import Line, line_plot_svg

NONE = "\u2013"  # an en dash for a missing value

_CSS = """
body { font: 11px/1.35 system-ui, sans-serif; margin: 16px; color: #111; }
h1 { font-size: 17px; margin: 0 0 4px; } h2 { font-size: 13px; margin: 12px 0 4px; }
table { border-collapse: collapse; width: 100%; margin-bottom: 6px; }
th, td { border-bottom: 1px solid #ccc; padding: 2px 4px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } .num { text-align: right; } .muted { color: #666; }
.facts { display: grid; grid-template-columns: max-content 1fr max-content 1fr; gap: 1px 10px; }
.facts dt { font-weight: 600; } .facts dd { margin: 0; }
svg { display: block; margin: 2px 0; } svg text { font: 9px sans-serif; }
svg .plot-title { font-weight: 600; font-size: 10px; } .alarm-high { color: #b00; }
@media print {
  @page { size: A4; margin: 10mm; }
  body { margin: 0; font-size: 9px; } h2 { break-after: avoid; }
  table, svg, section { break-inside: avoid; } svg { max-width: 100%; height: auto; }
}
"""


def session_report_html(view: SessionView) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    body = [
        f"<h1>Session report <span class='muted'>{_e(view.session_id)}</span></h1>",
        _facts(view),
        _pain(view),
        _modalities(view),
        _plots(view),
        _techniques(view),
        _alarms(view),
        _gaps_and_notes(view),
        _footer(view),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>Session {_e(view.session_id[:8])}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _e(value: object) -> str:
    """Escaped text of any record value; None prints as NONE."""
    return NONE if value is None else escape(str(value))


def _is_name_key(key: str) -> bool:
    """Keys never printed: anything that could carry a person's name."""
    return "name" in key.lower()


def _settings_text(settings: JsonDict) -> str:
    shown = [f"{k}={v}" for k, v in settings.items() if not _is_name_key(k)]
    return ", ".join(shown) if shown else NONE


def _facts(view: SessionView) -> str:
    status = view.exit_status or "open (not ended)"
    if view.reason:
        status += f" — {view.reason}"
    plan = {k: v for k, v in view.plan.items() if not _is_name_key(k)}
    plan_text = _settings_text(plan) if plan else "no plan recorded"
    facts = [
        ("Patient (pseudonym)", view.patient_pseudonym),
        ("Therapist", view.therapist),
        ("Started (UTC)", view.started_wall),
        ("Ended (UTC)", view.ended_wall),
        ("Room", view.meta.get("room")),
        ("Exit status", status),
        ("Software", view.meta.get("software_version")),
        ("Plan", plan_text),
    ]
    cells = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f"<dl class='facts'>{cells}</dl>"


def _pain(view: SessionView) -> str:
    before, after = view.pain("before"), view.pain("after")
    text = f"NPRS before: <b>{_e(before and before.score)}</b> / 10 · after: "
    text += f"<b>{_e(after and after.score)}</b> / 10"
    others = [p for p in view.pain_scores if p.when not in ("before", "after")]
    if others:
        text += " · other scores: " + ", ".join(
            f"{_e(p.score)} at {view.elapsed_s(p.mono_ns) / 60:.1f} min" for p in others
        )
    return f"<h2>Pain</h2><p>{text}</p>"


def _minutes(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def _modalities(view: SessionView) -> str:
    summaries = view.modality_summaries()
    if not summaries:
        return "<h2>Modalities</h2><p class='muted'>no device streams recorded</p>"
    rows = "".join(_modality_row(s) for s in summaries)
    return (
        "<h2>Modalities</h2><table><tr><th>Device</th><th>Modality</th><th>Settings</th>"
        "<th class='num'>On-time (m:s)</th><th class='num'>Energy (J)</th>"
        "<th class='num'>Dose (J/cm²)</th><th class='num'>Peak</th><th>Alarms</th></tr>"
        f"{rows}</table>"
    )


def _modality_row(s: ModalitySummary) -> str:
    modality = s.modality
    if modality == STIMULATION and s.attended is not None:
        modality += " (attended)" if s.attended else " (unattended)"
    peak = NONE if s.peak is None else f"{s.peak[1]:g} {s.peak[2] or ''}"
    raised = [a for a in s.alarms if a.change == "raised"]
    alarms = "; ".join(f"{a.rule_id} ({a.priority})" for a in raised) or "none"
    energy = NONE if s.energy_j is None else f"{s.energy_j:.1f}"
    dose = NONE if s.dose_j_cm2 is None else f"{s.dose_j_cm2:.2f}"
    return (
        f"<tr><td>{_e(s.device)} <span class='muted'>{_e(s.model)}</span></td>"
        f"<td>{_e(modality)}</td><td>{_e(_settings_text(s.settings))}</td>"
        f"<td class='num'>{_minutes(s.on_time_s)}</td><td class='num'>{energy}</td>"
        f"<td class='num'>{dose}</td><td class='num'>{_e(peak)}</td><td>{_e(alarms)}</td></tr>"
    )


_OUTPUT_KEYS = {
    ULTRASOUND: (("intensity_measured_w_cm2", "measured"), ("intensity_setpoint_w_cm2", "set")),
    STIMULATION: (("amplitude_measured_ma", "measured"), ("amplitude_setpoint_ma", "set")),
}


def _plots(view: SessionView) -> str:
    svgs = [svg for stream in view.streams.values() for svg in _stream_plots(view, stream)]
    return "<h2>Output over time</h2>" + "".join(svgs) if svgs else ""


def _stream_plots(view: SessionView, stream: Stream) -> Iterable[str]:
    units = stream.units
    for modality in stream.modalities:
        lines = [
            Line(label, _minutes_points(view, stream, key))
            for key, label in _OUTPUT_KEYS.get(modality, ())
            if key in stream.columns
        ]
        if lines:
            key = next(k for k, _ in _OUTPUT_KEYS[modality] if k in stream.columns)
            what = "intensity" if modality == ULTRASOUND else "amplitude"
            title = f"{stream.device}: {modality} {what}"
            yield line_plot_svg(title, lines, units.get(key) or "")
    if "head_temperature_c" in stream.columns:
        line = Line("head", _minutes_points(view, stream, "head_temperature_c"))
        title = f"{stream.device}: ultrasound head temperature"
        yield line_plot_svg(title, [line], "°C", from_zero=False)


def _minutes_points(view: SessionView, stream: Stream, key: str) -> list[tuple[float, float]]:
    return [(view.elapsed_s(t) / 60, v) for t, v in stream.numeric(key)]


def _techniques(view: SessionView) -> str:
    if not view.techniques:
        return "<h2>Techniques</h2><p class='muted'>no manual techniques logged</p>"
    rows = []
    for span in view.techniques:
        start = view.elapsed_s(span.start_mono_ns) / 60
        end = "not ended"
        if span.end_mono_ns is not None:
            end = f"{view.elapsed_s(span.end_mono_ns) / 60:.1f}"
        duration = NONE if span.duration_s is None else _minutes(span.duration_s)
        rows.append(
            f"<tr><td class='num'>{start:.1f}</td><td class='num'>{_e(end)}</td>"
            f"<td class='num'>{duration}</td><td>{_e(technique_label(span.technique))}</td>"
            f"<td>{_e(span.region.replace('_', ' '))} ({_e(span.side)})</td>"
            f"<td>{_e(span.pressure)}</td><td>{_e(span.notes)}</td></tr>"
        )
    return (
        "<h2>Techniques</h2><table><tr><th class='num'>Start (min)</th>"
        "<th class='num'>End (min)</th><th class='num'>Duration</th><th>Technique</th>"
        f"<th>Region (side)</th><th>Pressure</th><th>Notes</th></tr>{''.join(rows)}</table>"
    )


def _alarms(view: SessionView) -> str:
    if not view.alarms:
        return "<h2>Alarms</h2><p class='muted'>no alarms</p>"
    rows = "".join(
        f"<tr class='alarm-{_e(a.priority)}'><td class='num'>"
        f"{view.elapsed_s(a.mono_ns) / 60:.1f}</td><td>{_e(a.change)}</td><td>{_e(a.priority)}"
        f"</td><td>{_e(a.device)}</td><td>{_e(a.rule_id)}</td><td>{_e(a.message)}</td>"
        f"<td>{_e(a.acknowledged_by)}</td></tr>"
        for a in view.alarms
    )
    return (
        "<h2>Alarms</h2><table><tr><th class='num'>Time (min)</th><th>Change</th>"
        "<th>Priority</th><th>Device</th><th>Rule</th><th>Message</th><th>Acknowledged by</th>"
        f"</tr>{rows}</table>"
    )


def _gaps_and_notes(view: SessionView) -> str:
    parts = []
    if view.gaps:
        items = "".join(
            f"<li>{_e(g.device)}: {g.samples_lost} samples not kept from "
            f"{view.elapsed_s(g.from_mono_ns) / 60:.1f} min ({_e(g.reason)})</li>"
            for g in view.gaps
        )
        parts.append(f"<h2>Gaps in the record</h2><ul>{items}</ul>")
    if view.notes:
        items = "".join(
            f"<li>{view.elapsed_s(n.mono_ns) / 60:.1f} min: {_e(n.text)}</li>" for n in view.notes
        )
        parts.append(f"<h2>Notes</h2><ul>{items}</ul>")
    return "".join(parts)


def _footer(view: SessionView) -> str:
    last = view.entries[-1]
    return (
        f"<p class='muted'>{len(view.entries)} record entries; last entry {last.seq} hash "
        f"{_e(last.hash)}. Check with <code>sessionconsole records verify</code>.</p>"
    )
