"""dask.distributed: a LocalCluster of 2 worker processes gives the single-process result (align
with rotations, classify), also when a worker is killed mid-iteration; clear errors for what a
cluster run cannot do."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import cryocore
from cryocore.io import open_stack, write_mrc

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    d = tmp_path_factory.mktemp("dask")
    sim = cryocore.simulate(2400, 48, snr=0.2, max_shift=3, rotate=True, seed=5)
    write_mrc(str(d / "rot.mrcs"), sim.images.astype(np.float32), pixel_size_A=3.0)
    views = cryocore.simulation.make_views(3, 48, seed=6)
    mix = cryocore.simulate(600, 48, snr=0.3, templates=views, max_shift=2, seed=7)
    write_mrc(str(d / "views.mrcs"), mix.images.astype(np.float32), pixel_size_A=3.0)
    return d


def _same(a, b):
    np.testing.assert_array_equal(a.accepted, b.accepted)
    np.testing.assert_array_equal(a.classes, b.classes)
    np.testing.assert_allclose(a.shifts, b.shifts, atol=1e-4)
    np.testing.assert_allclose((a.angles - b.angles + 180) % 360 - 180, 0, atol=1e-3)
    np.testing.assert_allclose(a.class_averages, b.class_averages, atol=1e-5 * np.abs(a.class_averages).max())


def test_a_local_cluster_gives_the_single_process_result(client, stacks):
    kw = dict(progress=False, iterations=4, threads=1, max_memory="80M")  # several blocks of small chunks
    with open_stack(str(stacks / "rot.mrcs")) as s:
        here = cryocore.align(s, **kw)
        there = cryocore.align(s, executor=client, **kw)
        assert here.timings["memory"]["chunk_size"] * 8 < len(s)  # more than one task per pass
        _same(here, there)
        shifted = cryocore.align(s, rotate=False, **kw)  # translations: the workers' spectra caches
        shifted_there = cryocore.align(s, rotate=False, executor=client, **kw)
        _same(shifted, shifted_there)
    with open_stack(str(stacks / "views.mrcs")) as s:
        here = cryocore.classify(s, 3, iterations=4, progress=False, threads=1, seed=2)
        there = cryocore.classify(s, 3, iterations=4, progress=False, threads=1, seed=2, executor=client)
        _same(here, there)


def test_a_worker_killed_mid_iteration_does_not_change_the_result(client, stacks):
    kw = dict(progress=False, iterations=4, threads=1, max_memory="80M")
    killed = []

    def kill_a_busy_worker():
        pids = client.run(os.getpid)
        deadline = time.time() + 60
        while time.time() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_busy_worker)

    def callback(info):
        if info["iteration"] == 1:  # kill one during iteration 2
            killer.start()

    with open_stack(str(stacks / "rot.mrcs")) as s:
        here = cryocore.align(s, **kw)
        there = cryocore.align(s, executor=client, callback=callback, **kw)
    killer.join()
    assert killed, "no worker was busy"
    _same(here, there)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it


def test_an_interrupted_cluster_run_resumes_to_the_same_result(client, stacks, tmp_path):
    kw = dict(progress=False, iterations=4, threads=1, max_memory="80M")
    checkpoint = str(tmp_path / "run.npz")

    def stop(info):
        if info["iteration"] == 2:
            raise KeyboardInterrupt

    with open_stack(str(stacks / "rot.mrcs")) as s:
        here = cryocore.align(s, **kw)
        with pytest.raises(KeyboardInterrupt):
            cryocore.align(s, executor=client, checkpoint=checkpoint, callback=stop, **kw)
        resumed = cryocore.align(s, executor=client, checkpoint=checkpoint, resume=True, **kw)
    assert [r["iteration"] for r in resumed.history][-1] == 4
    _same(here, resumed)


def test_cluster_runs_refuse_what_they_cannot_do(client, stacks, monkeypatch):
    imgs = np.random.default_rng(0).standard_normal((40, 32, 32)).astype(np.float32)
    with pytest.raises(ValueError, match="from their files"):
        cryocore.align(imgs, executor=client, progress=False)
    from cryocore.pipeline import distributed as dist_module

    monkeypatch.setattr(dist_module, "CONNECT_TIMEOUT_S", 1)
    t0 = time.time()
    with pytest.raises(ValueError, match="cannot reach the dask scheduler"):
        cryocore.align(imgs, executor="tcp://127.0.0.1:9", progress=False)
    assert time.time() - t0 < 30
    with pytest.raises(ValueError, match="local:N"):
        cryocore.align(imgs, executor="local:0", progress=False)
    with pytest.raises(TypeError, match="executor must be"):
        cryocore.align(imgs, executor=42, progress=False)
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    with pytest.raises(ValueError, match=r"cryocore\[cluster\]"):
        cryocore.align(imgs, executor="local:2", progress=False)


def test_cli_runs_on_a_local_cluster(stacks, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "cryocore", "align", str(stacks / "views.mrcs"), "-o", str(out),
                        "--dask", "local:2", "--quiet", "--iterations", "2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "average.mrc").exists()
    bad = subprocess.run([sys.executable, "-m", "cryocore", "align", str(stacks / "views.mrcs"), "-o",
                          str(tmp_path / "bad"), "--dask", "local:x", "--quiet"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "local:N" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
