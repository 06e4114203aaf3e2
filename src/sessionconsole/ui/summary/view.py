"""The summary as Rich renderables (pure): one table of outputs, pain, alarms and notes."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from sessionconsole.ui.summary.tally import SessionSummary

MODALITY_SHORT = {"ultrasound": "US", "stimulation": "stim"}


def duration_text(seconds: float) -> str:
    """Minutes and seconds, as a clock shows them."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def outputs_table(summary: SessionSummary) -> Table:
    """One row per output: settings used, on-time, energy, alarms."""
    table = Table(expand=True, show_edge=False, pad_edge=False, box=None, header_style="bold")
    table.add_column("Output", no_wrap=True)
    table.add_column("Settings used", ratio=1)
    table.add_column("On", justify="right", no_wrap=True)
    table.add_column("Energy", justify="right", no_wrap=True)
    table.add_column("Alarms", justify="right", no_wrap=True)
    for out in summary.outputs.values():
        energy = "—" if out.energy_j is None else f"{out.energy_j:.0f} J"
        table.add_row(
            f"{out.device} {MODALITY_SHORT.get(out.modality, out.modality)}",
            "\n".join(out.settings) or ("never on" if out.on_time_s == 0 else "not recorded"),
            "?" if out.on_time_s is None else duration_text(out.on_time_s),
            energy,
            str(out.alarms),
        )
    return table


def pain_text(summary: SessionSummary) -> Text:
    """Pain before and after (NPRS), or that none was recorded."""

    def score(value: int | None) -> str:
        return "not recorded" if value is None else f"{value}/10"

    return Text.assemble(
        ("Pain (NPRS) ", "bold"),
        f"before {score(summary.pain_before)}, after {score(summary.pain_after)}",
    )


def alarms_text(summary: SessionSummary) -> Text:
    """Each alarm in words: priority, rule, message, who acknowledged."""
    text = Text.assemble(("Alarms ", "bold"), str(len(summary.alarms)))
    for alarm in summary.alarms:
        who = alarm.acknowledged_by or "NOT acknowledged"
        text.append(f"\n{alarm.priority.upper()} ", style="bold")
        text.append(f"{alarm.rule_id}: {alarm.message} ({who})")
    return text


def summary_renderable(summary: SessionSummary) -> RenderableType:
    """The whole summary body; where its figures come from is said first."""
    state = " Session ended or controller unreachable." if summary.ended else ""
    notes = Text.assemble(("Notes ", "bold"), "; ".join(summary.notes) or "none")
    return Group(
        Text.assemble(
            ("Session ", "bold"),
            summary.session_id,
            f" — {summary.source}.{state}",
        ),
        Text(
            "Dose (J/cm²) needs the plan's treated area; ? = not in this source: see the export.",
            style="dim",
        ),
        outputs_table(summary),
        pain_text(summary),
        alarms_text(summary),
        notes,
    )
