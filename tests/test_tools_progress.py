"""Progress of a long `vprobe -d` run: on a terminal's stderr only, never in a pipe, never mixed
into the script's output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vprobe_tools.commands.status_line import RunProgress

from conftest import TextSink
from test_tools_vprobe import vprobe

BIN = Path(sys.executable).parent
TICK = 'VMM1Hz { if (VCPUID == 0) { printf("tick\\n"); } }'
# vprobe with the line shown from the start and at every slice, whatever the host's speed.
EAGER_VPROBE = ("from vprobe_tools.commands.status_line import RunProgress\n"
                "RunProgress.SHOW_AFTER_S = RunProgress.EVERY_S = 0\n"
                "from vprobe_tools.commands.vprobe import main\n"
                "main()\n")


def test_the_line_shows_the_seconds_reached_and_elapsed_once_the_run_takes_a_while():
    now = [0.0]
    err = TextSink()
    progress = RunProgress(err, 60, simulated=True, enabled=True, clock=lambda: now[0])
    progress(5.0)
    assert err.text == ""  # a short run says nothing
    now[0] = 1.5
    progress(12.3)
    now[0] = 1.6
    progress(13.0)  # redrawn at most every EVERY_S
    assert err.text == "\rvprobe: 12.3 of 60 simulated s, 1.5 s elapsed\x1b[K"
    out = []
    progress.around(out.append)("log line\n")
    assert out == ["log line\n"] and err.text.endswith("\r\x1b[K")  # cleared before the output
    progress.clear()
    assert not RunProgress(TextSink(), 60, simulated=False, enabled=False).shown


def test_a_long_run_shows_progress_on_a_terminal_and_its_output_is_unchanged():
    master, slave = os.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", EAGER_VPROBE, "-d", "3", "-c", TICK], stdout=subprocess.PIPE,
                              stderr=slave, timeout=600)
    finally:
        os.close(slave)
    err = b""
    try:
        while chunk := os.read(master, 65536):
            err += chunk
    except OSError:  # the terminal's other end is closed: all read
        pass
    os.close(master)
    assert done.returncode == 0 and done.stdout == b"tick\n" * 3
    assert b"\rvprobe: 0.1 of 3 simulated s, " in err and b"\rvprobe: 3.0 of 3 simulated s, " in err and b" s elapsed\x1b[K" in err
    assert err.endswith(b"\r\x1b[K")  # the line is gone at the end


def test_on_a_pipe_nothing_is_shown():
    result = vprobe("-d", "3", "-c", TICK)
    assert result.err == "" and result.out == b"tick\n" * 3
