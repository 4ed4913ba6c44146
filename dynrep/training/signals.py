"""Stopping training cleanly on Ctrl-C (SIGINT) and SIGTERM: at a step boundary, after the final checkpoint."""
from __future__ import annotations

import signal
import threading
from types import FrameType


class TrainingInterrupted(KeyboardInterrupt):
    """Training was stopped by SIGINT or SIGTERM at a step boundary, after the ``on_train_end`` callbacks (the
    final checkpoint) ran. ``signal_name`` is ``"SIGINT"`` or ``"SIGTERM"``; ``step`` the steps taken."""

    def __init__(self, message: str, signal_name: str, step: int):
        super().__init__(message)
        self.signal_name, self.step = signal_name, step


class StopSignals:
    """Context manager that turns the first SIGINT or SIGTERM into a request (``received`` becomes its name)
    instead of an exception or death, and restores the previous handlers at once, so a second signal acts
    as it normally would (``KeyboardInterrupt``, termination). Only the main thread can catch signals: in any
    other thread this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum).name
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
