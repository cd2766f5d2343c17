"""Stacks larger than max_memory: the anonymous memory a run adds stays under max_memory
(measured in a subprocess, from /proc), the spectra cache keeps what fits, and reads of the next
chunk are started ahead (prefetch) in file order."""

import json
import subprocess
import sys
import textwrap

import mrcfile
import numpy as np
import pytest

import cryocore
from cryocore.io import open_stack

# Runs one job on a stack in a fresh interpreter and prints the peak RssAnon above the baseline
# (after the imports and the opening of the stack), sampled every 2 ms.
PROBE = textwrap.dedent("""
    import json, sys, threading, time
    import cryocore
    from cryocore.io import open_stack

    def anon():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("RssAnon:"))

    path, job, mem = sys.argv[1:4]
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.002)

    with open_stack(path) as stack:
        base = anon()
        t = threading.Thread(target=sample)
        t.start()
        if job == "align":
            r = cryocore.align(stack, max_memory=mem, iterations=2, progress=False, threads=2)
        else:
            r = cryocore.classify(stack, 4, max_memory=mem, iterations=2, progress=False, threads=2)
        done.set()
        t.join()
    print(json.dumps(dict(added=peak[0] - base, plan=r.timings["memory"], kept=int(r.accepted.sum()))))
""")


@pytest.fixture(scope="module")
def large_stack(tmp_path_factory):
    """A 400 MiB MRC stack (6 400 images of 128 px), written in blocks."""
    path = str(tmp_path_factory.mktemp("ooc") / "large.mrcs")
    views = cryocore.simulation.make_views(4, 128, seed=2)
    with mrcfile.new_mmap(path, shape=(6400, 128, 128), mrc_mode=2) as mrc:
        mrc.voxel_size = 2.0
        for start in range(0, 6400, 800):
            sim = cryocore.simulate(800, 128, snr=0.2, templates=views, max_shift=3, seed=start)
            mrc.data[start : start + 800] = sim.images
    return path


@pytest.mark.parametrize("job", ["align", "classify"])
def test_memory_stays_under_max_memory_on_a_stack_three_times_larger(large_stack, job):
    limit = 128 << 20
    out = subprocess.run([sys.executable, "-c", PROBE, large_stack, job, str(limit)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["plan"]["max_memory"] == limit and got["kept"] > 3000
    assert 0 < got["added"] < limit, got  # the stack itself is 400 MiB


def test_prefetch_asks_for_the_next_chunk_in_file_order(large_stack, monkeypatch):
    from cryocore.io import stack as stack_module

    asked = []
    monkeypatch.setattr(stack_module, "will_need", lambda block: asked.append(block.shape[0]))
    with open_stack(large_stack) as s:
        s.prefetch(100, 300)
        assert asked == [200]
        asked.clear()
        events: list[tuple[str, int]] = []  # ("prefetch" | "read", first image) of chunks, in call order
        prefetch, read_view = s.prefetch, s.read_view

        def chunk_read(a: int, b: int) -> np.ndarray:
            if b - a > 1:  # (not the run fingerprint's single images)
                events.append(("read", a))
            return read_view(a, b)

        s.prefetch = lambda a, b: (events.append(("prefetch", a)), prefetch(a, b))[1]  # type: ignore[method-assign]
        s.read_view = chunk_read  # type: ignore[method-assign]
        cryocore.align(s, rotate=False, max_memory="96M", iterations=1, progress=False, cache_spectra=False)
    assert len(asked) >= 6400 // 1024 and sum(asked) >= 6400 - 1024
    # each pass reads its chunks in file order, and every chunk after a pass's first was asked
    # for one chunk ahead: just before the read of the chunk before it
    reads = [i for i, (what, _) in enumerate(events) if what == "read"]
    assert len(reads) >= 2 * 6400 // 1024
    passes = 0
    for k, i in enumerate(reads):
        start = events[i][1]
        if start == 0:
            passes += 1
            continue
        assert events[reads[k - 1]][1] < start, events[max(0, i - 3) : i + 1]
        ahead = events[reads[k - 2] + 1 if k >= 2 else 0 : reads[k - 1]]
        assert ahead[-1:] == [("prefetch", start)], events[max(0, i - 3) : i + 1]
    assert passes >= 2  # (the initial references' pass and the iteration's)


def test_will_need_leaves_mapped_and_ordinary_memory_as_it_is(large_stack):
    from cryocore.io.stack import will_need

    with mrcfile.mmap(large_stack, permissive=True) as mrc:
        before = np.array(mrc.data[10:12])
        will_need(mrc.data[10:2000])
        np.testing.assert_array_equal(mrc.data[10:12], before)
    from cryocore.io.stack import unmap

    a = np.arange(10.0)
    will_need(a)
    unmap(a)  # ordinary memory: left as it is (DONTNEED would zero it)
    will_need(np.zeros((0, 3)))
    assert a[3] == 3.0


def test_sparse_reads_and_released_pages_give_the_same_images(large_stack, tmp_path):
    from cryocore.io.stack import read_rows, unmap

    rows = np.array([3, 4, 5, 90, 700, 701])
    with open_stack(large_stack) as s:
        whole = s.read(0, 800)
        np.testing.assert_array_equal(read_rows(s, 0, rows), whole[rows])
        np.testing.assert_array_equal(read_rows(s, 100, rows[:3]), s.read(103, 106))
        view = s.read_view(0, 800)
        s.release(0, 800)  # the view's pages are unmapped: reading them again gives the same data
        np.testing.assert_array_equal(view, whole)
        assert read_rows(s, 0, np.zeros(0, np.int64)).shape == (0, 128, 128)
    with mrcfile.mmap(large_stack, permissive=True) as mrc:
        before = np.array(mrc.data[7])
        unmap(mrc.data[0:20])
        np.testing.assert_array_equal(mrc.data[7], before)
    # a STAR file pointing into the stack reads the same images (copied, then unmapped)
    import pandas as pd

    star = tmp_path / "p.star"
    table = cryocore.io.ParticleTable(pd.DataFrame({"rlnImageName": [f"{i}@{large_stack}" for i in (5, 6, 7, 900)]}))
    cryocore.io.write_star_table(str(star), table)
    with open_stack(str(star)) as t, open_stack(large_stack) as s:
        np.testing.assert_array_equal(t.read(0, 4), np.concatenate([s.read(4, 7), s.read(899, 900)]))
