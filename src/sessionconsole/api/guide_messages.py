"""API messages of guided sessions: step start, pause, resume, skip, adjust; the guide's snapshot.

Kept apart from `messages.py`, which adds the commands to its `Command` union and the snapshot
to `Snapshot.guide`. Steps are numbered from 1, as the plan and the record number them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sessionconsole.model.plan import StimulationValues, UltrasoundValues

StepState = Literal["pending", "active", "paused", "done", "skipped", "shortened"]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GuideStartCommand(_Msg):
    """Start the current plan step: its outputs are configured as planned and started through
    the kernel (a manual step only starts its timer). Nothing starts without this command."""

    type: Literal["guide_start"] = "guide_start"
    attended: bool = False  # as StartCommand: stimulation given with the therapist present


class GuidePauseCommand(_Msg):
    """Pause the current step: its outputs are stopped and its timer holds."""

    type: Literal["guide_pause"] = "guide_pause"
    reason: str = Field(default="", max_length=500)


class GuideResumeCommand(_Msg):
    """Resume the paused step: its outputs start again for the time it has left."""

    type: Literal["guide_resume"] = "guide_resume"
    attended: bool = False


class GuideSkipCommand(_Msg):
    """End the current step now (skipped if it never ran, shortened if it did); a reason is
    required and recorded with the operator."""

    type: Literal["guide_skip"] = "guide_skip"
    reason: str = Field(min_length=1, max_length=500)


class GuideAdjustCommand(_Msg):
    """Change a step not yet finished within the plan's limits (refused with PLAN_LIMIT when a
    limit would be passed); recorded as a deviation with the operator and the reason."""

    type: Literal["guide_adjust"] = "guide_adjust"
    step: int | None = Field(default=None, ge=1, description="1-based; None: the current step")
    duration_s: int | None = Field(default=None, ge=1, le=3600)
    ultrasound: UltrasoundValues | None = None
    stimulation: StimulationValues | None = None
    amplitude_ma: float | None = Field(default=None, ge=0.0, le=100.0)
    reason: str = Field(min_length=1, max_length=500)


GUIDE_COMMANDS = (
    GuideStartCommand,
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideAdjustCommand,
)
GuideCommand = (
    GuideStartCommand
    | GuidePauseCommand
    | GuideResumeCommand
    | GuideSkipCommand
    | GuideAdjustCommand
)


class GuideStepSnapshot(_Msg):
    """One plan step as the screen shows it."""

    number: int
    kind: str
    label: str  # e.g. "ultrasound lumbar (left) us1"
    state: StepState
    duration_s: float
    remaining_s: float


class GuideSnapshot(_Msg):
    """The guided session: every step, which is current and next, and deviations so far."""

    title: str
    current: int | None  # step number; None once every step is finished
    next: int | None
    paused: bool
    remaining_s: float | None  # of the current step
    steps: list[GuideStepSnapshot]
    deviations: int
