"""Ports: what the daemon needs from the hardware, as typing Protocols.

Every adapter in ``hw`` (real or fake) implements one of these. The daemon in
``device`` only ever sees these types, so the same code runs on a Raspberry Pi
with a mic-array HAT and on a laptop with the fakes of ``hw.fake``.

Audio is int16 PCM in numpy arrays shaped ``(frames, channels)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

PcmBlock = npt.NDArray[np.int16]
"""int16 PCM shaped (frames, channels)."""


@dataclass(frozen=True)
class DuplexFormat:
    """Shape of the blocks a duplex stream exchanges with its callback."""

    rate_hz: int
    block_frames: int
    in_channels: int
    out_channels: int

    @property
    def block_ms(self) -> float:
        return self.block_frames * 1000.0 / self.rate_hz


@dataclass(frozen=True)
class StreamTime:
    """Timing of one duplex block on the stream's own clock, in seconds.

    ``input_adc_s`` is when the first input frame of the block hit the ADC,
    ``output_dac_s`` when the first output frame returned for it will reach the
    DAC. Their difference is the round-trip latency the echo canceller must
    bridge.
    """

    input_adc_s: float
    output_dac_s: float
    current_s: float


@dataclass
class XrunCounters:
    """Counts of the status flags PortAudio hands to the callback."""

    input_overflows: int = 0
    input_underflows: int = 0
    output_overflows: int = 0
    output_underflows: int = 0
    priming_output: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_overflows
            + self.input_underflows
            + self.output_overflows
            + self.output_underflows
        )


DuplexCallback = Callable[[PcmBlock, StreamTime], PcmBlock]
"""Called once per block from the audio thread.

Receives the mic block ``(block_frames, in_channels)`` and returns the output
block ``(block_frames, out_channels)``. It must not block and must not raise:
an exception inside a PortAudio callback aborts the stream.
"""


class HardwareError(Exception):
    """A hardware part is missing, cannot be opened, or failed."""


class AudioError(HardwareError):
    """An audio device could not be opened or failed while running."""


@runtime_checkable
class AudioDuplex(Protocol):
    """A full-duplex stream: mic frames in, DAC frames out, one clock."""

    @property
    def format(self) -> DuplexFormat: ...

    @property
    def xruns(self) -> XrunCounters: ...

    @property
    def latency_s(self) -> tuple[float, float]:
        """(input latency, output latency) as the stream reports them."""
        ...

    def start(self, callback: DuplexCallback) -> None:
        """Open the device if needed and start calling ``callback``.

        Raises AudioError when the device cannot be opened.
        """
        ...

    def stop(self) -> None:
        """Stop calling the callback; idempotent."""
        ...

    def close(self) -> None:
        """Release the device; idempotent."""
        ...


@dataclass(frozen=True)
class Rgb:
    """One LED colour, 0-255 per channel."""

    r: int
    g: int
    b: int

    def __post_init__(self) -> None:
        # Checked once here, so no LED driver can be handed a value it would wrap.
        if not all(isinstance(c, int) and 0 <= c <= 255 for c in (self.r, self.g, self.b)):
            raise ValueError(
                f"LED colour ({self.r}, {self.g}, {self.b}) has a channel outside 0..255"
            )

    def scaled(self, factor: float) -> Rgb:
        f = min(max(factor, 0.0), 1.0)
        return Rgb(round(self.r * f), round(self.g * f), round(self.b * f))


OFF = Rgb(0, 0, 0)


@runtime_checkable
class Leds(Protocol):
    """A set of LEDs shown all at once (a ring of pixels, or a single LED)."""

    @property
    def count(self) -> int: ...

    def show(self, pixels: Sequence[Rgb]) -> None:
        """Show ``pixels`` (exactly ``count`` of them) now."""
        ...

    def close(self) -> None:
        """Turn the LEDs off and release them; idempotent."""
        ...


@dataclass(frozen=True)
class ButtonEvent:
    """A button changed state. ``at_s`` is on the monotonic clock."""

    name: str
    pressed: bool
    at_s: float


ButtonHandler = Callable[[ButtonEvent], None]
"""Called on every button edge; may be called from another thread."""


@runtime_checkable
class Buttons(Protocol):
    """The device's buttons, by name ("talk", "mute", ...)."""

    @property
    def names(self) -> tuple[str, ...]: ...

    def set_handler(self, handler: ButtonHandler | None) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    """The service manager's notification channel (sd_notify)."""

    def notify(self, message: str) -> bool:
        """Send e.g. "READY=1" or "STATUS=listening"; False when nobody listens."""
        ...


class CameraError(HardwareError):
    """The camera is missing, busy, or failed to take a picture."""


@dataclass(frozen=True)
class Still:
    """One picture as the camera encoded it (JPEG or PNG bytes), before any resizing."""

    data: bytes
    mime_type: str  # "image/jpeg" or "image/png"


@runtime_checkable
class Camera(Protocol):
    """A camera that takes one still at a time, on request."""

    @property
    def name(self) -> str:
        """What it is, for logs: "picamera2 (imx708)", "rpicam-still", "fake (cat.jpg)"."""
        ...

    def capture(self) -> Still:
        """Take one picture now. Blocks for up to a few seconds while exposure settles,
        so callers on an event loop run it in a thread.

        Raises CameraError saying what failed and what to check.
        """
        ...

    def close(self) -> None:
        """Release the camera; idempotent."""
        ...


@runtime_checkable
class Clock(Protocol):
    """Monotonic time in seconds."""

    def monotonic(self) -> float: ...
