"""Dask: the scheduler setting, and real clusters running the qilian sample like the default run.

The cluster tests start real ``distributed`` clusters (a ``LocalCluster`` of 2 worker processes;
``dask scheduler`` + ``dask worker`` as separate processes on 127.0.0.1) and run
``thawdetect run --detector insar_sbas --region qilian --scheduler ADDRESS`` in a subprocess:
the inventory must equal the default (threads) run's, and the cluster must have run the
terrain tasks (proof that the work went there).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from thawdetect.core.compute import (
    compute,
    current_scheduler,
    use_scheduler,
    validate_scheduler,
)
from thawdetect.core.config import load_run_config
from thawdetect.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env["THAWDETECT_PROGRESS"] = "0"
    return env


# -- the setting ----------------------------------------------------------------------------------


def test_validate_scheduler():
    assert validate_scheduler(" Processes ") == "processes"
    assert validate_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("thread", "http://host:8786", ""):
        with pytest.raises(ConfigError, match="use synchronous, threads, processes"):
            validate_scheduler(bad)


def test_config_section(tmp_path):
    assert load_run_config(None).compute.scheduler == "threads"
    good = tmp_path / "good.yaml"
    good.write_text("compute:\n  scheduler: tcp://127.0.0.1:8786\n")
    assert load_run_config(good).compute.scheduler == "tcp://127.0.0.1:8786"
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute:\n  scheduler: gpu\n")
    with pytest.raises(ConfigError) as exc:
        load_run_config(bad)
    assert str(exc.value).startswith(f"{bad}: compute.scheduler:") and "\n" not in str(exc.value)


def test_use_scheduler_nests_and_restores():
    import dask

    assert current_scheduler() == "threads"
    task = dask.delayed(np.add)(np.arange(3), 1)
    with use_scheduler("synchronous"):
        assert current_scheduler() == "synchronous"
        with use_scheduler(None):
            assert current_scheduler() == "synchronous"
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:  # a step's own threads see the run's setting
            assert pool.submit(current_scheduler).result() == "synchronous"
        (out,) = compute(task)
        with use_scheduler("processes"):
            (again,) = compute(task)
    assert current_scheduler() == "threads"
    assert out.tolist() == again.tolist() == [1, 2, 3]


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


@pytest.mark.parametrize("progress", ["0", "1"])
@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_local_pools_run_tasks_on_one_blas_thread(monkeypatch, scheduler, progress):
    """Each pool thread/process already keeps a core busy: BLAS inside a task gets one thread
    (OpenBLAS's own pool on top oversubscribed the cores), and this process gets its setting
    back afterwards."""
    import dask
    from threadpoolctl import threadpool_limits

    monkeypatch.setenv("THAWDETECT_PROGRESS", progress)
    if scheduler == "processes" and (os.cpu_count() or 1) < 2:
        pytest.skip("one core: a worker's BLAS has one thread anyway")
    with threadpool_limits(limits=2, user_api="blas"):
        if not _blas_threads():
            pytest.skip("numpy is not linked to a BLAS that threadpoolctl controls")
        assert set(_blas_threads()) == {2}
        (inside,) = compute(dask.delayed(_blas_threads, pure=False)(), scheduler=scheduler)
        assert inside and set(inside) == {1}
        assert set(_blas_threads()) == {2}


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
def test_compute_with_progress_bar(monkeypatch, scheduler):
    """With bars on, results are the same; errors inside tasks reach the caller unchanged."""
    import dask

    monkeypatch.setenv("THAWDETECT_PROGRESS", "1")
    tasks = [dask.delayed(np.multiply, pure=False)(np.arange(4), k) for k in range(5)]
    with use_scheduler(scheduler):
        got = compute(*tasks, description="test tasks")
    assert [g.tolist() for g in got] == [[0, k, 2 * k, 3 * k] for k in range(5)]

    def boom(x):
        raise ValueError(f"bad block {x}")

    with pytest.raises(ValueError, match="bad block 3"), use_scheduler(scheduler):
        compute(dask.delayed(boom)(3), description="failing")


def test_unreachable_cluster_is_one_line():
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError) as exc, use_scheduler(f"tcp://127.0.0.1:{port}"):
        pass
    msg = str(exc.value)
    assert msg.startswith(f"scheduler 'tcp://127.0.0.1:{port}': cannot connect") and "\n" not in msg


def test_cli_rejects_bad_scheduler(tmp_path):
    out = subprocess.run(
        [
            *(str(BIN / "thawdetect"), "run", "--region", "qilian", "--detector", "insar_sbas"),
            *("--scheduler", "gpu", "--output-dir", str(tmp_path / "run")),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "Error: scheduler 'gpu': use synchronous, threads, processes or tcp://HOST:PORT"
    ]
    assert not (tmp_path / "run").exists()


# -- real clusters --------------------------------------------------------------------------------


def _run_qilian(out_dir: Path, scheduler: str | None) -> None:
    cmd = [str(BIN / "thawdetect"), "run", "--detector", "insar_sbas", "--region", "qilian"]
    cmd += ["--output-dir", str(out_dir)]
    if scheduler:
        cmd += ["--scheduler", scheduler]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "stopped:" in out.stdout


def _inventory(run_dir: Path):
    import pyogrio

    inv = pyogrio.read_dataframe(run_dir / "ledger.gpkg", layer="inventory")
    inv = inv.drop(columns=["evidence_json"])  # names the run's own chip files
    return inv.sort_values("inventory_id").reset_index(drop=True)


def _assert_same_inventory(a: Path, b: Path) -> None:
    ia, ib = _inventory(a), _inventory(b)
    assert len(ia) > 5
    assert list(ia.columns) == list(ib.columns)
    assert ia.drop(columns="geometry").equals(ib.drop(columns="geometry"))
    assert ia.geometry.to_wkb().tolist() == ib.geometry.to_wkb().tolist()


def _task_prefixes(address: str) -> set[str]:
    from distributed import Client

    def names(dask_scheduler):  # runs on the scheduler
        return sorted(dask_scheduler.task_prefixes)

    with Client(address, timeout="30s") as client:
        return set(client.run_on_scheduler(names))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("default") / "run"
    _run_qilian(run_dir, None)
    return run_dir


@pytest.mark.slow
def test_local_cluster_gives_the_default_inventory(default_run, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        assert len(cluster.workers) == 2
        _run_qilian(tmp_path / "run", cluster.scheduler_address)
        assert "layers_task" in _task_prefixes(cluster.scheduler_address)
    _assert_same_inventory(default_run, tmp_path / "run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.slow
def test_dask_scheduler_and_worker_processes(default_run, tmp_path):
    """``dask scheduler`` and ``dask worker`` as separate processes, then ``--scheduler tcp://``."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "worker")}  # noqa: SIM115
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    *(str(BIN / "dask"), "scheduler", "--host", "127.0.0.1"),
                    *("--port", str(port), "--no-dashboard"),
                ],
                stdout=logs["scheduler"],
                stderr=subprocess.STDOUT,
                env=_env(),
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    *(str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1"),
                    *("--no-dashboard", "--local-directory", str(tmp_path / "worker")),
                ],
                stdout=logs["worker"],
                stderr=subprocess.STDOUT,
                env=_env(),
            )
        )
        deadline = time.monotonic() + 120
        while True:  # the scheduler takes a moment to listen
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=max(1, deadline - time.monotonic()))
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise
                time.sleep(1)
        _run_qilian(tmp_path / "run", address)
        assert "layers_task" in _task_prefixes(address)
    finally:
        for proc in reversed(procs):  # workers first, then the scheduler
            _stop(proc)
        for log in logs.values():
            log.close()
    assert all(p.returncode is not None for p in procs)
    _assert_same_inventory(default_run, tmp_path / "run")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_trim_memory_gives_back_what_worker_threads_freed():
    """Memory freed in a worker thread stays in glibc's arena (resident) until trimmed: the
    engine trims after each detector's propose (1.8 GB after an InSAR frame's first iteration)."""
    import threading

    from thawdetect.core.compute import trim_memory

    def anon_mb() -> int:
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) // 1024 for x in f if x.startswith("RssAnon"))

    keep = []

    def work() -> None:
        blocks = [bytearray(100_000) for _ in range(3000)]  # 300 MB of heap, not mmap
        for b in blocks:
            b[::4096] = b"\x01" * len(b[::4096])  # touched: resident
        keep.append(blocks[-1])  # the arena's top stays in use: nothing shrinks on its own

    t = threading.Thread(target=work)
    t.start()
    t.join()
    before = anon_mb()
    assert trim_memory() is True
    assert before - anon_mb() > 150


def test_release_pages_drops_read_only_maps_and_keeps_their_values(tmp_path):
    """Pages of a read-only map stop counting as resident once released (they fault back in,
    unchanged, when read again); copy-on-write maps and in-memory arrays are left alone."""
    import numpy as np

    from thawdetect.core.compute import release_pages

    def file_mb() -> float:
        with open("/proc/self/status") as f:
            return next(int(x.split()[1]) / 1024 for x in f if x.startswith("RssFile"))

    a = np.arange(16 * 2**20, dtype=np.float64)  # 128 MB
    np.save(tmp_path / "a.npy", a)
    ro = np.load(tmp_path / "a.npy", mmap_mode="r")
    cow = np.load(tmp_path / "a.npy", mmap_mode="c")
    total = float(ro.sum())  # every page touched: resident
    before = file_mb()
    assert release_pages(ro[::2], None, a, cow) == 1  # a view of the map releases the map
    assert before - file_mb() > 100
    assert float(ro.sum()) == total  # faulted back in from the page cache, the same values
    cow[0] = -1.0  # a copy-on-write map keeps its own change: never released
    assert release_pages(cow) == 0 and cow[0] == -1.0
    small = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert release_pages(small, min_bytes=2 * small.nbytes) == 0  # smaller than asked: kept
