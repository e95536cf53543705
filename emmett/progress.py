"""Progress of a long compile, on a terminal: `emmettc: big.emt: analysing... 3.5 s`.

A compile of thousands of lines takes seconds; on a terminal the user is told
that it runs and what it is doing (the driver names each stage through
`CompileOptions.progress`).  Shown on standard error only when that is a
terminal (never on a pipe or in a file, where it would be noise in a log) and
only once the compile has taken `delay` seconds (a small compile shows
nothing).  A daemon thread redraws the line in place (a carriage return)
every `interval` seconds; the line is erased when the compile ends, so the
diagnostics that follow start on a clean line.
"""

import io
import threading
import time

DELAY = 1.0
INTERVAL = 0.5
_ERASE = "\r\x1b[K"


class CompileProgress:
    """A context manager around one compile; its `stage` method is the `CompileOptions.progress` hook.

    `stream` is a text or a byte stream (vprobe's); `tool` names the command in the line.
    """

    def __init__(self, label, stream, *, tool="emmettc", delay=DELAY, interval=INTERVAL):
        self.label = label
        self.tool = tool
        self.stream = stream
        self.delay = delay
        self.interval = interval
        self.current = "reading"
        self.shown = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._start = None

    def stage(self, name):
        """The compile has reached stage `name` ("parsing", "analysing"...)."""
        self.current = name

    def __enter__(self):
        if _is_terminal(self.stream):
            self._start = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="emmettc-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._done.set()
            self._thread.join()
            with self._lock:
                if self.shown:
                    self._write(_ERASE)
        return False

    def _run(self):
        if self._done.wait(self.delay):
            return
        while True:
            with self._lock:
                if self._done.is_set():
                    return
                elapsed = time.monotonic() - self._start
                self._write(f"{_ERASE}{self.tool}: {self.label}: {self.current}... {elapsed:.1f} s")
                self.shown = True
            if self._done.wait(self.interval):
                return

    def _write(self, text):
        try:
            self.stream.write(text if isinstance(self.stream, io.TextIOBase) else text.encode("utf-8"))
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: the compile goes on
            self._done.set()


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False
