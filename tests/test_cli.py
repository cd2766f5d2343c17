"""The command line: the demo job and user errors (exit code 2, one line, no traceback)."""

import re
import subprocess
import sys

import pytest

from cryocore.cli import main


def test_demo_reports_accuracy(capsys):
    assert main(["demo", "--n", "40", "--size", "64", "--snr", "1.0", "--max-shift", "5"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"median ([0-9.]+) px", out)
    assert m, out
    # SNR 1 against the true template: well below a pixel.
    assert float(m.group(1)) < 0.3


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--n", "0"],
        ["demo", "--snr", "-1"],
        ["demo", "--threads", "0", "--n", "5", "--size", "64"],
    ],
)
def test_bad_values_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0]


def test_unknown_option_exits_2():
    r = subprocess.run([sys.executable, "-m", "cryocore", "demo", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "--bogus" in r.stderr
