"""Converter output captured at the file-descriptor level into a log file, and the terminal restored."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from ofa_edge.terminal import summarise

ROOT = Path(__file__).resolve().parents[1]

# Every way a converter writes: C stdio, raw fds, print, Python warnings, a logging handler made inside
# (absl makes its handler on import), tqdm-style carriage returns; then an exception inside a capture.
SCRIPT = textwrap.dedent("""
    import ctypes, logging, os, sys, warnings
    from ofa_edge.terminal import STDERR, capture_output
    libc = ctypes.CDLL(None)
    with capture_output(sys.argv[1]):
        os.write(2, b"W0000 00:00:1.0 12 flatbuffer_export.cc:1] from C++ on fd 2\\n")
        libc.puts(b"from C stdio on fd 1")
        print("from print")
        sys.stderr.write("Running Calibration:  10%\\rRunning Calibration: 100%\\n")
        warnings.warn("a python warning")
        logging.getLogger("conv").addHandler(logging.StreamHandler())
        logging.getLogger("conv").warning("logged inside")
        STDERR.write("progress bar line\\n")
    try:
        with capture_output(sys.argv[2]):
            print("before the failure")
            raise RuntimeError("converter failed")
    except RuntimeError:
        print("caught")
    logging.getLogger("conv").warning("logged after")
    os.write(2, b"fd 2 after\\n")
""")


def test_capture_takes_every_kind_of_output_and_restores_the_terminal(tmp_path):
    a, b = tmp_path / "logs" / "a.log", tmp_path / "logs" / "b.log"
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(a), str(b)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    log = a.read_text()
    for text in ("from C++ on fd 2", "from C stdio on fd 1", "from print", "Running Calibration: 100%",
                 "UserWarning: a python warning", "logged inside"):
        assert text in log
        assert text not in out.stdout + out.stderr
    assert b.read_text() == "before the failure\n"
    assert out.stdout == "caught\n"
    # the terminal stream reached the real stderr during the capture; a handler made inside writes to the
    # restored stderr afterwards (not to a closed log, not into the log)
    assert out.stderr == "progress bar line\nlogged after\nfd 2 after\n"
    summary = summarise(a)
    assert (summary.lines, summary.warnings, summary.errors) == (7, 2, 0)


def test_summary_counts_warnings_and_errors_once_per_line(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("I0000 00:00:1.0 1 a.cc:1] info\nW0000 00:00:1.0 1 a.cc:2] w1\nWARNING: absl\n"
                   "x.py:3: DeprecationWarning: old\n  warnings.warn('old')\nE0000 00:00:1.0 1 a.cc:3] e1\n"
                   "Traceback (most recent call last):\nValueError: bad\n\n")
    s = summarise(log)
    assert (s.lines, s.warnings, s.errors) == (8, 3, 3)
    assert s.to_dict(tmp_path) == {"file": "x.log", "lines": 8, "warnings": 3, "errors": 3}
