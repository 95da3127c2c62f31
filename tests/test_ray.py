"""The ``ray`` executor against a real two-node Ray cluster started by the test.

Ray's nodes advertise the machine's interface address even with
``--node-ip-address=127.0.0.1``, so the cluster runs inside a network namespace the test
creates (``unshare -n`` with loopback up): every address there is 127.0.0.1 and no traffic
leaves loopback. Token authentication stays on (``RAY_AUTH_MODE=token`` with a random token
shared by the head, the worker node and the driver). Skipped, with the reason, where Ray is
not installed or no network namespace can be made (it needs root or user namespaces).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CRASH_PLUGIN = """
import os

import numpy as np

from transferlab import hookimpl
from transferlab.api import Predictor, TransferMethod


class Crash(TransferMethod):
    name = "crash"
    family = "baseline"
    summary = "kills its worker process"
    needs_module = False

    def fit(self, backbone, task, ctx):
        os._exit(3)


@hookimpl
def register_methods(register):
    register(Crash)
"""

SUITE = """
name = "ray"
tasks = ["digits"]
seeds = [0, 1]
backbones = [{ name = "raw:pixels", params = { size = 8 } }]
methods = ["linear-probe", "ncm"]
"""

SCRIPT = """
set -e
ip link set lo up
V="$(dirname "$PYTHON")"
"$V/ray" start --head --node-ip-address=127.0.0.1 --port=6391 --num-cpus=1 \\
    --include-dashboard=false --disable-usage-stats > "$OUT/head.log" 2>&1
"$V/ray" start --address=127.0.0.1:6391 --node-ip-address=127.0.0.1 --num-cpus=1 \\
    --disable-usage-stats > "$OUT/worker.log" 2>&1
trap '"$V/ray" stop --force > /dev/null 2>&1' EXIT
"$PYTHON" -c "import ray; ray.init(address='127.0.0.1:6391'); print(len(ray.nodes()))" \\
    > "$OUT/nodes.txt" 2> "$OUT/init.log"
"$V/transferlab" bench "$OUT/suite.toml" --executor ray --address 127.0.0.1:6391 \\
    --db "$OUT/ray.sqlite" --quiet > "$OUT/bench.out" 2> "$OUT/bench.err" || true
"$V/transferlab" bench "$OUT/crash.toml" --executor ray --address 127.0.0.1:6391 \\
    --db "$OUT/crash.sqlite" --quiet > "$OUT/crash.out" 2> "$OUT/crash.err" || true
"""


def _namespace_works() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace ({probe.stderr.strip()[:80]})"
    return None


def _rows(db: Path) -> dict[str, tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return {key: (status, metrics) for key, status, metrics in conn.execute(
            "SELECT cell_key, status, metrics FROM results")}


def test_a_suite_on_a_two_node_ray_cluster_stores_what_the_local_executor_does(
        tmp_path, fake_dists):
    """Bugs caught: cells that never reach the second node's worker (or the cluster at all),
    results written by workers instead of the driver, cells whose key or metrics differ from
    the local executor's, and a cell whose worker dies stopping the suite instead of being
    recorded as failed."""
    pytest.importorskip("ray", reason="the ray executor needs Ray: pip install"
                        " 'transferlab[ray]'")
    reason = _namespace_works()
    if reason:
        pytest.skip(reason)
    fake_dists.add("transferlab-crash", "crash", "transferlab_crash", CRASH_PLUGIN)
    (tmp_path / "suite.toml").write_text(SUITE)
    (tmp_path / "crash.toml").write_text(SUITE.replace('"ray"', '"crash"').replace(
        '["linear-probe", "ncm"]', '["crash", "ncm"]'))
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(fake_dists.root),
                                          os.environ.get("PYTHONPATH", "")])}
    script = tmp_path / "cluster.sh"
    script.write_text(SCRIPT)
    done = subprocess.run(["unshare", "-n", "bash", str(script)], env=env, timeout=600,
                          capture_output=True, text=True)
    logs = {p.name: p.read_text()[-2000:] for p in tmp_path.glob("*.err")}
    assert done.returncode == 0, (done.stderr[-2000:], logs)
    assert (tmp_path / "nodes.txt").read_text().strip() == "2", logs
    on_ray = _rows(tmp_path / "ray.sqlite")
    local = subprocess.run(
        [str(Path(sys.executable).with_name("transferlab")), "bench",
         str(tmp_path / "suite.toml"), "--db", str(tmp_path / "local.sqlite"), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    assert len(on_ray) == 4 and on_ray == _rows(tmp_path / "local.sqlite")
    crashed = _rows(tmp_path / "crash.sqlite")
    statuses = sorted(status for status, _ in crashed.values())
    assert statuses == ["error", "error", "ok", "ok"], logs
    with closing(sqlite3.connect(tmp_path / "crash.sqlite")) as conn:
        errors = [e for (e,) in conn.execute("SELECT error FROM results WHERE error IS NOT"
                                             " NULL")]
    assert all(e.startswith("ray worker failed:") for e in errors), errors
