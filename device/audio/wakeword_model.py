"""The wake-word model's streaming step, on buffers allocated once.

pymicro-wakeword's ``MicroWakeWordFeatures.process_streaming`` and
``MicroWakeWord.process_streaming_prob`` allocate, concatenate and reshape arrays
on every 10 ms frame, and average the sliding window of probabilities with
``statistics.mean`` (exact fractions): together they cost the capture loop more
CPU than the network itself. The classes here do the same steps with the same
parts (the package's audio frontend, the model's own TfLite interpreter, tensors
and quantization parameters, the same rounding and the same window), so the
probabilities are the library's to the last bit (a test compares them frame by
frame on speech).
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

CHUNK_BYTES = 320
"""10 ms of 16 kHz PCM16: what the frontend takes per call."""


class StreamingFeatures:
    """The package's audio frontend fed 10 ms at a time: one feature row (a list of
    floats) per completed window, as ``MicroWakeWordFeatures`` yields them."""

    def __init__(self) -> None:
        # Imported here, as the package itself is: a missing wheel is reported by the
        # detector's loader with what to install, not by an import error.
        self._frontend: Any = importlib.import_module("pymicro_features").MicroFrontend()
        self._pending = b""

    def process(self, audio: bytes) -> Iterator[list[float]]:
        buffer = self._pending + audio if self._pending else audio
        start = 0
        while start + CHUNK_BYTES <= len(buffer):
            out = self._frontend.process_samples(buffer[start : start + CHUNK_BYTES])
            start += out.samples_read * 2
            if out.features:
                yield out.features
        self._pending = buffer[start:]


class StreamingModel:
    """``MicroWakeWord.process_streaming_prob`` for a model loaded by the package.

    Feature rows are gathered ``stride`` at a time, quantized, run through the
    interpreter; its output is dequantized through a table of every code, and the
    probability is the mean of the last ``sliding_window_size`` outputs (0.0 until
    the window is full, and on the frames between two runs, as the library does).
    The outputs are multiples of the output scale, so the float sum of the window
    is exact and dividing it once rounds the same as ``statistics.mean``.
    """

    def __init__(self, model: Any) -> None:
        self._model = model  # holds the interpreter the pointers below belong to
        lib = model.lib
        self._lib = lib
        self._interpreter = model.interpreter
        self._input = model.input_tensor
        self._output = model.output_tensor
        self._stride = int(model.stride)
        self._scale = float(model.input_scale)
        self._zero_point = int(model.input_zero_point)
        in_dtype = np.dtype(model.input_dtype)
        in_bytes = int(lib.TfLiteTensorByteSize(self._input))
        width = in_bytes // (self._stride * in_dtype.itemsize)
        self._rows: npt.NDArray[np.float64] = np.empty((self._stride, width))
        self._scaled: npt.NDArray[np.float64] = np.empty_like(self._rows)
        self._quantized = np.empty((self._stride, width), dtype=in_dtype)
        out_dtype = np.dtype(model.output_dtype)
        out_values = int(lib.TfLiteTensorByteSize(self._output)) // out_dtype.itemsize
        self._out = np.empty(out_values, dtype=out_dtype)
        if self._quantized.nbytes != in_bytes or self._out.shape != (1,):
            raise ValueError(
                f"unexpected wake-word model tensors: input {in_bytes} bytes for stride "
                f"{self._stride}, output {self._out.shape[0]} values"
            )
        # Addresses taken once: ``ndarray.ctypes`` builds an object on every access.
        self._in_address = int(self._quantized.ctypes.data)
        self._out_address = int(self._out.ctypes.data)
        info = np.iinfo(out_dtype)
        codes = np.arange(info.min, info.max + 1).astype(out_dtype)
        # The library's own expression, once for every code the model can output.
        table = (codes.astype(np.float32) - model.output_zero_point) * model.output_scale
        self._offset = -int(info.min)
        self._dequantized: list[float] = table.tolist()
        self._filled = 0
        self._window_size = int(model.sliding_window_size)
        self._probabilities: deque[float] = deque(maxlen=self._window_size)
        self.probability_cutoff = float(model.probability_cutoff)

    def process(self, features: list[float]) -> float:
        """One feature row; the model's probability (0.0 between runs)."""
        self._rows[self._filled] = features
        self._filled += 1
        if self._filled < self._stride:
            return 0.0
        self._filled = 0
        scaled = self._scaled
        np.divide(self._rows, self._scale, out=scaled)
        np.add(scaled, self._zero_point, out=scaled)
        np.rint(scaled, out=scaled)
        np.copyto(self._quantized, scaled, casting="unsafe")
        lib = self._lib
        lib.TfLiteTensorCopyFromBuffer(self._input, self._in_address, self._quantized.nbytes)
        lib.TfLiteInterpreterInvoke(self._interpreter)
        lib.TfLiteTensorCopyToBuffer(self._output, self._out_address, self._out.nbytes)
        probabilities = self._probabilities
        probabilities.append(self._dequantized[int(self._out[0]) + self._offset])
        if len(probabilities) < self._window_size:
            return 0.0
        return math.fsum(probabilities) / self._window_size
