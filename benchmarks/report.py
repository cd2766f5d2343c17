"""The reports of the comparison scripts: a Markdown table with the machine it was measured on, and
a PNG bar chart of one column (``--report DIR`` of compare.py, compare_rotate.py, compare_align.py,
compare_ctf.py and classify_accuracy.py; the latest are in docs/benchmarks/), and the helpers
the benchmark scripts share (``angle_error``).

asv's discovery imports this module too (it imports every module here): it defines no benchmark.
"""

from __future__ import annotations

import os
import platform
import textwrap
from typing import Sequence


def angle_error(a, b):
    """The circular difference of two angles (arrays) in degrees: ``|a - b|`` wrapped into [0, 180]."""
    import numpy as np

    return np.abs((np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0)


def machine_lines(run: str = "") -> list[str]:
    """What the numbers were measured on: CPU, load average, Python, numpy, cryocore and its FFTW
    build, and the script's settings (``run``). A load average above 0.5 before the run is flagged."""
    import numpy

    import cryocore

    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    try:
        loads = os.getloadavg()
    except OSError:
        loads = (0.0, 0.0, 0.0)
    c = cryocore.build_config()
    fftw = (f"FFTW {c['fftw_version']} {'+'.join(c['fftw_simd'])}, "
            + ("bundled (static)" if c["fftw_bundled"] else "system library"))
    lines = [] if loads[0] <= 0.5 else [
        f"WARNING   : load average {loads[0]:.2f} before the run: other processes were using the CPUs, "
        "timings (multi-threaded ones most) are unreliable"]
    lines += [
        f"machine   : {platform.machine()} {model}",
        f"cpus      : os.cpu_count()={os.cpu_count()}, usable={usable}, load average "
        + " ".join(f"{x:.2f}" for x in loads),
        f"python    : {platform.python_version()} ({platform.python_implementation()}), numpy {numpy.__version__}",
        f"cryocore  : {c['version']}, {fftw}, planning {c['planning']!r}",
    ]
    return lines + ([f"run       : {run}"] if run else [])


def write_report(outdir: str, name: str, title: str, header: str, columns: Sequence[str],
                 rows: Sequence[Sequence[str]], bars: Sequence[tuple[str, float, bool]], xlabel: str,
                 machine: Sequence[str], notes: Sequence[str] = ()) -> tuple[str, str]:
    """Writes ``outdir/name.md`` (``title``, ``header``, the table of ``columns`` x ``rows``, the
    ``notes`` as a list under it, the ``machine`` lines) and ``outdir/name.png`` (one horizontal bar per ``(label, value,
    is_cryocore)`` of ``bars``, cryocore's in blue, the axis labelled ``xlabel``, logarithmic when the
    values span more than 50x). Returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    md, png = os.path.join(outdir, f"{name}.md"), os.path.join(outdir, f"{name}.png")
    lines = [f"# {title}", "", header, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ([""] + [f"- {n}" for n in notes]) if notes else []
    lines += ["", f"![{name}]({name}.png)", "", "Machine:", "", "```", *machine, "```", ""]
    with open(md, "w") as f:
        f.write("\n".join(lines))
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.4))
    ax.barh(range(len(bars)), [v for _, v, _ in bars], color=["tab:blue" if c else "tab:gray" for *_, c in bars])
    ax.set_yticks(range(len(bars)), [label for label, _, _ in bars], fontsize=8)
    ax.invert_yaxis()
    values = [v for _, v, _ in bars if v > 0]
    if values and max(values) > 50 * min(values):  # a log axis keeps the small bars visible
        ax.set_xscale("log")
    ax.set_xlabel(xlabel if all(c for *_, c in bars) else f"{xlabel} (blue: cryocore)")
    fig.suptitle(textwrap.fill(header, 100), fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return md, png
