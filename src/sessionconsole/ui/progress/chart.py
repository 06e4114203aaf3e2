"""Text charts of pain and range of motion over sessions (pure; one line per session).

Every mark is a letter or a bar of characters with its number beside it, so the chart reads
the same without colour, over SSH and in a screenshot. Lines fit 78 columns (80x24 terminal).
"""

from __future__ import annotations

from sessionconsole.model.vocabulary import Vocabulary
from sessionconsole.ui.progress.parse import ProgressReport, SessionRow

PAIN_CELLS_PER_POINT = 2  # 0..10 on 21 cells
ROM_BAR_CELLS = 30
BEFORE, AFTER, BOTH = "B", "A", "*"
FLAGS = {"verified": "", "failed": "  ! FAILED", "unsigned": "  ? unsigned"}


def flag(session: SessionRow) -> str:
    """The verification mark of a session's line, in words (nothing when verified)."""
    return FLAGS.get(session.verification, "  ? not checked")


def pain_chart(report: ProgressReport) -> list[str]:
    """NPRS before (B) and after (A) on a 0-10 axis, one line per session, oldest first."""
    width = 10 * PAIN_CELLS_PER_POINT + 1
    axis = "".join(str(n).ljust(2 * PAIN_CELLS_PER_POINT) for n in range(0, 11, 2)).rstrip()
    lines = [
        f"Pain (NPRS 0-10)   {BEFORE} = before   {AFTER} = after   {BOTH} = both",
        f"{'':10}  {axis}",
    ]
    for s in report.sessions:
        cells = ["."] * width
        for score, mark in ((s.pain_before, BEFORE), (s.pain_after, AFTER)):
            if score is not None:
                at = score * PAIN_CELLS_PER_POINT
                cells[at] = BOTH if cells[at] in (BEFORE, AFTER) else mark
        values = f"{BEFORE} {_num(s.pain_before)}  {AFTER} {_num(s.pain_after)}"
        lines.append(f"{s.day}  {''.join(cells)}  {values}{flag(s)}")
    return lines


def rom_title(series: tuple[str, str, str, str], vocabulary: Vocabulary) -> str:
    """The series in the clinic's words, with its normal value when the vocabulary has it."""
    joint_id, movement_id, side, mode = series
    joint = vocabulary.joint(joint_id)
    movement = joint.movement(movement_id) if joint is not None else None
    joint_label = joint.label if joint is not None else joint_id
    movement_label = movement.label.lower() if movement is not None else movement_id
    normal = f"   normal {movement.normal_deg} deg (AAOS)" if movement is not None else ""
    return f"ROM: {joint_label} {movement_label}, {side}, {mode}{normal}"


def rom_chart(
    report: ProgressReport, series: tuple[str, str, str, str], vocabulary: Vocabulary
) -> list[str]:
    """One bar per session for one ROM series: '#' up to the reading on a scale of the normal
    value (or the largest reading, if larger), the degrees and the percentage of normal."""
    normal = _normal_deg(series, vocabulary)
    readings = [(s, [r.degrees for r in s.rom if r.series == series][-1:]) for s in report.sessions]
    largest = max([d for _s, ds in readings for d in ds], default=0)
    scale = max(normal or 0, largest, 1)
    lines = [rom_title(series, vocabulary)]
    for s, last in readings:
        if not last:
            lines.append(f"{s.day}  {'':{ROM_BAR_CELLS}}  not measured{flag(s)}")
            continue
        degrees = last[0]
        filled = round(ROM_BAR_CELLS * degrees / scale)
        bar = "#" * filled + "." * (ROM_BAR_CELLS - filled)
        share = f"  {round(100 * degrees / normal)}% of normal" if normal else ""
        lines.append(f"{s.day}  {bar}  {degrees:>3} deg{share}{flag(s)}")
    return lines


def goal_lines(report: ProgressReport) -> list[str]:
    """Each goal's statuses over the sessions in words, the latest last."""
    names = report.goal_names()
    if not names:
        return ["Goals: none recorded"]
    lines = ["Goals (oldest -> latest)"]
    for name in names:
        marks = [
            f"{g.status}" + (f" ({g.measure})" if g.measure else "")
            for s in report.sessions
            for g in s.goals
            if g.goal == name
        ]
        lines.append(f"- {name}: " + " > ".join(marks))
    return lines


def verification_summary(report: ProgressReport) -> str:
    """One line on whether the charted sessions verified, naming those that did not."""
    failed = [s for s in report.sessions if s.verification == "failed"]
    unproven = [s for s in report.sessions if s.verification not in ("verified", "failed")]
    if failed:
        days = ", ".join(f"{s.day} ({s.problem})" for s in failed)
        return f"FAILED verification, values may have been altered: {days}"
    if unproven:
        return f"NOT PROVEN: {len(unproven)} sessions unsigned or not checked"
    if not report.sessions:
        return f"No sessions recorded for {report.pseudonym}"
    return f"All {len(report.sessions)} sessions verified (hash chain and signatures)"


def _normal_deg(series: tuple[str, str, str, str], vocabulary: Vocabulary) -> int | None:
    joint = vocabulary.joint(series[0])
    movement = joint.movement(series[1]) if joint is not None else None
    return movement.normal_deg if movement is not None else None


def _num(score: int | None) -> str:
    return "-" if score is None else str(score)
