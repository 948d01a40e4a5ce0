"""When microphone audio may leave the device: the activation policy, pure.

    mode "always"        always open: the voice gate alone decides what streams.
    mode "wake_word"     closed until the wake word (or the talk button) opens it;
                         open while the user speaks or a reply runs; after a reply
                         it stays open ``follow_up_s`` for an answer without the
                         wake word; otherwise it closes once nothing happened for
                         ``listen_timeout_s``.
    mode "push_to_talk"  opened by the talk button's press; the capture pipeline
                         streams only while the button is held; closes after the
                         reply (no follow-up: the button opens every turn).

The policy hears what happened (``activate``, ``speech_started``, ...) with the
audio time it happened at, and ``tick`` says when an activation ran out, so the
daemon can tell the state machine (``ACTIVATION_ENDED``). No clock, no I/O: the
times are seconds of audio counted by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("wake_word", "push_to_talk", "always")


@dataclass(frozen=True)
class ActivationSettings:
    mode: str = "wake_word"
    listen_timeout_s: float = 8.0
    follow_up_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.listen_timeout_s <= 0 or self.follow_up_s < 0:
            raise ValueError("listen_timeout_s must be > 0 and follow_up_s >= 0")


class Activation:
    """Open or closed, and until when; every method takes the audio time in seconds."""

    def __init__(self, settings: ActivationSettings) -> None:
        self.settings = settings
        self._open = settings.mode == "always"
        self._speaking = False  # the voice gate is open within this activation
        self._replying = False  # a response runs (from its start to its reply's end)
        self._fresh = False  # activated, and no speech yet
        self._deadline_s: float | None = None
        self.follow_ups = 0  # follow-up windows opened, for the status and tests

    @property
    def is_open(self) -> bool:
        """True while microphone audio may be streamed."""
        return self._open

    @property
    def awaiting_speech(self) -> bool:
        """Activated (wake word, button, follow-up) and nobody spoke yet."""
        return self._open and self._fresh

    @property
    def deadline_s(self) -> float | None:
        """When the activation runs out if nothing happens; None: it does not."""
        return None if self._busy else self._deadline_s

    @property
    def _busy(self) -> bool:
        return self._speaking or self._replying

    def activate(self, now_s: float) -> None:
        """The wake word was heard or the talk button pressed: a turn may start."""
        if self.settings.mode == "always":
            return  # always open: there is nothing to activate
        self._open = True
        self._fresh = True
        self._speaking = False
        self._deadline_s = now_s + self.settings.listen_timeout_s

    def end(self) -> None:
        """The activation ends now (the user stopped it, or the microphone was muted)."""
        if self.settings.mode == "always":
            return
        self._open = False
        self._fresh = False
        self._speaking = False
        self._deadline_s = None

    def speech_started(self, now_s: float) -> None:
        """The voice gate opened; only speech within an activation counts."""
        del now_s
        if self._open:
            self._speaking = True
            self._fresh = False

    def speech_stopped(self, now_s: float) -> None:
        """The voice gate closed: wait ``listen_timeout_s`` for the reply or more speech."""
        if self._open and self._speaking:
            self._speaking = False
            self._deadline_s = now_s + self.settings.listen_timeout_s

    def response_started(self) -> None:
        self._replying = True

    def reply_finished(self, now_s: float) -> None:
        """The reply was played (or cut): the follow-up window opens, if there is one."""
        self._replying = False
        if self.settings.mode == "always":
            return
        follow_up_s = self.settings.follow_up_s if self.settings.mode == "wake_word" else 0.0
        if self._fresh and self._open:
            # Activated over the reply (wake word, button): that activation's own
            # listening time counts, the cut reply must not shorten it.
            assert self._deadline_s is not None
            self._deadline_s = max(self._deadline_s, now_s + follow_up_s)
            return
        if follow_up_s > 0:
            self._open = True
            self._fresh = True
            self.follow_ups += 1
        self._deadline_s = now_s + follow_up_s

    def disconnected(self) -> None:
        """The connection dropped: no reply is coming any more."""
        self._replying = False

    def tick(self, now_s: float) -> bool:
        """True once, when the activation runs out at ``now_s``."""
        deadline = self.deadline_s
        if not self._open or deadline is None or now_s < deadline:
            return False
        self.end()
        return self.settings.mode != "always"
