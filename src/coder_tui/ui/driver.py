"""The terminal driver: Textual's Linux driver with an input thread that sleeps until input comes.

Owns ``QuietLinuxDriver`` and ``driver_class``. Textual's stock input thread waits on the terminal
with a 0.1 s timeout, to notice that the app is closing and that a lone Escape has stood long
enough to be a key: ten wake-ups a second for as long as the app runs, more than the rest of the
dashboard together (issue 10: with llama-server's threads on every core, each wake-up takes a
core from the model). Here the thread waits for the terminal, for a pipe written when the app
closes, or for the parser's pending timeout, and for nothing else. Where Textual's internals are
not what this was written against, or ``TEXTUAL_DRIVER`` names a driver (the stock one:
``textual.drivers.linux_driver:LinuxDriver``), ``driver_class`` keeps Textual's choice.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import threading
from codecs import getincrementaldecoder
from typing import Any

from textual.driver import Driver

try:  # internals of Textual's Linux driver (textual 8); without them the stock driver runs
    from textual._time import get_time
    from textual._xterm_parser import XTermParser
    from textual.drivers.linux_driver import LinuxDriver
except ImportError:  # pragma: no cover - another Textual, or Windows
    LinuxDriver = None  # type: ignore[assignment,misc]

STOCK_TICK_S = 0.1
"""Textual's own wait; used when the parser's pending timeout cannot be read."""


class _WakingEvent(threading.Event):
    """An event that also writes a byte to a pipe when set, waking the thread that selects on it."""

    def __init__(self, wake_fd: int) -> None:
        super().__init__()
        self._wake_fd = wake_fd

    def set(self) -> None:
        super().set()
        if self._wake_fd < 0:  # the driver closed the pipe: its number may be another file's now
            return
        # OSError: the pipe is full (a wake is pending already)
        with contextlib.suppress(OSError):
            os.write(self._wake_fd, b"\0")

    def detach(self) -> None:
        """Write nothing from now on (the pipe is about to close)."""
        self._wake_fd = -1


def _pending_timeout(parser: Any) -> float | None:
    """Seconds until the parser gives up on a partial sequence (a lone Escape becomes a key), or
    None when nothing is pending; Textual's own 0.1 s where its parser keeps this elsewhere."""
    if not hasattr(parser, "_timeout_time"):
        return STOCK_TICK_S
    deadline: float | None = parser._timeout_time
    if deadline is None:
        return None
    return max(0.0, deadline - get_time())


if LinuxDriver is not None:

    class QuietLinuxDriver(LinuxDriver):
        """``LinuxDriver`` whose input thread blocks until a key, the close, or an Escape's
        timeout (Textual's wakes every 0.1 s)."""

        _wake_r = _wake_w = -1
        _waking: _WakingEvent | None = None
        _suspended = False
        """Application mode was left for Ctrl+Z and is not started again yet."""
        _busy = False
        """Inside a suspend or a resume (signal handlers run in the middle of either)."""
        _stop_after = False
        """Ctrl+Z came in the middle of a resume: stop once it is done."""
        _resume_again = False
        """SIGCONT came in the middle of a resume (which may have given up: see ``_resume``)."""

        def start_application_mode(self) -> None:
            """A new wake pipe (and close event) for each run of application mode: a suspend
            (Ctrl+Z, SIGTSTP) closes the driver, and the resume (SIGCONT) starts it again.
            Textual's start gives up without a word when the terminal is not ours (resumed in
            the background, ``bg``); a start that got as far as its writer thread ends the
            suspension."""
            self._close_wake_pipe()  # one left by a start that gave up
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._waking = _WakingEvent(self._wake_w)
            self.exit_event = self._waking
            writer = self._writer_thread
            super().start_application_mode()  # type: ignore[no-untyped-call]
            if self._writer_thread is not writer:
                self._suspended = False

        def _sigtstp_application(self, *_: object) -> None:
            """Ctrl+Z: leave application mode, stop, and on waking resume it here, without
            waiting for SIGCONT's handler. CPython sometimes runs no handler at all for a
            SIGCONT that comes while this one runs (seen about once in 200 quick stop/resume
            cycles, Textual's driver more often): the app was left running with no terminal and
            no input. A Ctrl+Z in the middle of a resume stops once the resume is done."""
            if not self._auto_restart:  # App.suspend: the app manages the terminal itself
                os.kill(os.getpid(), signal.SIGSTOP)
                return
            if self._busy:
                self._stop_after = True
                return
            if not self._suspended:
                self._busy = True
                try:
                    self.suspend_application_mode()
                finally:
                    self._busy = False
                self._must_signal_resume = True
                self._suspended = True
                self._stop_after = False  # a Ctrl+Z during the suspend: this stop is the one
            os.kill(os.getpid(), signal.SIGSTOP)
            self._resume()  # reached once continued

        def _sigcont_application(self, *_: object) -> None:
            if self._auto_restart:
                self._resume()

        def _resume(self) -> None:
            """Start application mode again after Ctrl+Z, once (SIGCONT's handler and the
            stopped Ctrl+Z handler both come here). A SIGCONT in the middle of it means the
            start may have met a stop of its own (``bg``, then ``fg``): it is tried again."""
            if self._busy:
                self._resume_again = True
                return
            while self._suspended:
                self._resume_again = False
                self._busy = True
                try:
                    self.start_application_mode()
                finally:
                    self._busy = False
                if not self._resume_again:
                    break
            if self._stop_after:
                self._stop_after = False
                self._sigtstp_application()

        def _drain_wake(self) -> None:
            with contextlib.suppress(BlockingIOError):  # empty: drained
                while os.read(self._wake_r, 512):
                    pass

        def run_input_thread(self) -> None:
            """Textual's loop (read, parse, dispatch), waiting without a fixed tick."""
            selector = selectors.SelectSelector()
            fileno = self.fileno
            selector.register(fileno, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            parser = XTermParser(self._debug)
            decode = getincrementaldecoder("utf-8")().decode

            def dispatch(ready: bool, final: bool = False) -> bool:
                if ready:
                    text = decode(os.read(fileno, 1024 * 4), final=final)
                    if not text:  # stdin is a pipe that ended
                        return False
                    for event in parser.feed(text):
                        self.process_message(event)
                for event in parser.tick():
                    self.process_message(event)
                return True

            try:
                while not self.exit_event.is_set():
                    ready = False
                    for key, _mask in selector.select(_pending_timeout(parser)):
                        if key.fd == fileno:
                            ready = True
                        else:
                            self._drain_wake()
                    if not dispatch(ready):
                        self.exit_event.wait()  # as Textual's: nothing more to read until the end
                selector.unregister(fileno)
                self._drain_wake()  # the close's byte: a later input thread (resume) starts clean
                dispatch(False, final=True)
            finally:
                selector.close()
                # EOF or a parse error at the end: nothing is left to deliver
                with contextlib.suppress(Exception):
                    for _event in parser.feed(""):
                        pass

        def close(self) -> None:
            super().close()
            self._close_wake_pipe()

        def _close_wake_pipe(self) -> None:
            if self._waking is not None:
                self._waking.detach()
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1


def driver_class(stock: type[Driver]) -> type[Driver]:
    """The driver to run: ``QuietLinuxDriver`` where Textual would pick its Linux driver by
    itself (a driver named in ``TEXTUAL_DRIVER`` is run as named)."""
    from textual import constants

    if LinuxDriver is not None and stock is LinuxDriver and not constants.DRIVER:
        return QuietLinuxDriver
    return stock
