"""The guide strip on the session screen: current and next step in words with time left, the
step keys posting the right commands, the skip reason asked for, F12 working in the dialog."""

from __future__ import annotations

from textual.message import Message
from textual.widgets import Input

from sessionconsole.api.guide_messages import (
    GuidePauseCommand,
    GuideResumeCommand,
    GuideSkipCommand,
    GuideSnapshot,
    GuideStartCommand,
    GuideStepSnapshot,
)
from sessionconsole.api.messages import StopAllCommand
from sessionconsole.ui.guide_strip import SkipDialog, clock, guide_lines
from tests.ui.fixed_snapshots import FakeClock, feed, offline_app
from tests.ui.test_session_views import commands, screen_text

STEPS = [
    ("manual", "manual lumbar (bilateral) myofascial_release", 480),
    ("ultrasound", "ultrasound lumbar (left) us1", 480),
    ("stimulation", "stimulation lumbar (bilateral) es2.ch1", 900),
]


def guide(current: int | None, state: str = "active", remaining_s: float = 161.0) -> GuideSnapshot:
    """A three-step plan with step `current` in `state` and the steps before it done."""
    steps = []
    for n, (kind, label, duration) in enumerate(STEPS, start=1):
        if current is None or n < current:
            st, left = "done", 0.0
        elif n == current:
            st, left = state, remaining_s
        else:
            st, left = "pending", float(duration)
        steps.append(
            GuideStepSnapshot(
                number=n, kind=kind, label=label, state=st, duration_s=duration, remaining_s=left
            )
        )
    return GuideSnapshot(
        title="Chronic low back pain, left",
        current=current,
        next=None if current is None or current == len(STEPS) else current + 1,
        paused=state == "paused" and current is not None,
        remaining_s=None if current is None else remaining_s,
        steps=steps,
        deviations=0,
    )


def test_the_lines_say_the_state_in_words_and_the_time_left() -> None:
    first, second = guide_lines(guide(2))
    assert first == "STEP 2/3 RUNNING  ultrasound lumbar (left) us1  2:41 left"
    assert second.startswith("next: 3 stimulation lumbar 15:00")
    assert "[g] go" in second and "[k] skip" in second
    assert guide_lines(guide(3, "paused", 59.4))[0].startswith("STEP 3/3 PAUSED")
    assert guide_lines(guide(3, "paused"))[1].startswith("next: (last step)")
    assert guide_lines(guide(1, "pending", 480))[0].startswith("STEP 1/3 READY")
    done = guide_lines(guide(None))
    assert done[0].startswith("PLAN FINISHED") and done[1].startswith("3 done, 0 shortened")
    assert (clock(0), clock(61.4), clock(3725)) == ("0:00", "1:01", "1:02:05")


async def test_the_strip_shows_current_and_next_and_the_keys_post_guide_commands() -> None:
    fake, posted = FakeClock(), []
    app = offline_app(fake)
    posted_hook: list[Message] = posted
    async with app.run_test(size=(80, 24), message_hook=posted_hook.append) as pilot:
        last = feed(app, fake, seconds=1)
        strip = app.session_screen.guide_strip
        await pilot.pause()
        assert not strip.display  # no plan: no strip
        app.show(last.model_copy(update={"seq": 100, "guide": guide(2)}))
        await pilot.pause()
        assert strip.display
        text = screen_text(app)
        assert "STEP 2/3 RUNNING" in text and "2:41 left" in text
        assert "next: 3 stimulation" in text and "F12" in text and "[k] skip" in text
        await pilot.press("h")
        app.show(last.model_copy(update={"seq": 101, "guide": guide(2, "paused")}))
        await pilot.pause()
        assert "STEP 2/3 PAUSED" in screen_text(app)
        await pilot.press("g")  # paused: g resumes
        app.show(last.model_copy(update={"seq": 102, "guide": guide(3, "pending", 900)}))
        await pilot.pause()
        await pilot.press("g")  # pending: g starts
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, SkipDialog)
        await pilot.press("f12")  # STOP ALL works inside the dialog's text field
        app.screen.query_one("#skip-reason", Input).value = "skin red under the pads"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SkipDialog)
        await pilot.press("k")
        await pilot.pause()
        await pilot.press("escape")  # cancelled: nothing sent
        await pilot.pause()
    sent = commands(posted)
    assert sent == [
        GuidePauseCommand(reason="paused by the therapist"),
        GuideResumeCommand(),
        GuideStartCommand(),
        StopAllCommand(),
        GuideSkipCommand(reason="skin red under the pads"),
    ]
