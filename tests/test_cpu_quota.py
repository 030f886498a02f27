"""Threads sized to the CPU quota: the cgroup parsers on sample files, the rule that picks the
count, and the count reaching the backend's own settings (in a subprocess: threads are
fixed when a process starts)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from cifar_demo import cpu_quota
from cifar_demo.cpu_quota import BadThreadCount, cgroup_quota, parse_cfs, parse_cpu_max, thread_limit, usable_cpus
from tests.conftest import REPO


@pytest.mark.parametrize(("text", "cpus"), [
    ("max 100000\n", None),
    ("150000 100000\n", 1.5),
    ("200000 100000", 2.0),
    ("50000 100000", 0.5),
    ("", None),
    ("max", None),
    ("lots 100000", None),
    ("100000 0", None),
    ("100000 100000 7", None),
])
def test_cgroup_v2_cpu_max(text, cpus):
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize(("quota", "period", "cpus"), [
    ("-1\n", "100000\n", None),
    ("250000\n", "100000\n", 2.5),
    ("100000", "100000", 1.0),
    ("garbage", "100000", None),
    ("100000", "", None),
])
def test_cgroup_v1_cfs_files(quota, period, cpus):
    assert parse_cfs(quota, period) == cpus


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_v2_quota_of_the_own_cgroup_and_the_smallest_of_its_ancestors(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = write(tmp_path / "self", "0::/spaces/app\n")
    write(root / "spaces" / "app" / "cpu.max", "max 100000\n")
    assert cgroup_quota(root, self_cgroup) is None
    write(root / "spaces" / "cpu.max", "150000 100000\n")  # the parent's limit applies to its children
    assert cgroup_quota(root, self_cgroup) == 1.5
    write(root / "spaces" / "app" / "cpu.max", "100000 100000\n")
    assert cgroup_quota(root, self_cgroup) == 1.0


def test_v2_inside_a_namespace_reads_the_mount_root(tmp_path):
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "200000 100000\n")
    assert cgroup_quota(root, write(tmp_path / "self", "0::/\n")) == 2.0


def test_v1_cpu_controller(tmp_path):
    root = tmp_path / "cgroup"
    self_cgroup = write(tmp_path / "self", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "300000\n")
    write(root / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_quota(root, self_cgroup) == 3.0


def test_missing_or_garbage_files_mean_no_quota(tmp_path):
    assert cgroup_quota(tmp_path / "nothing", tmp_path / "no-self-file") is None
    root = tmp_path / "cgroup"
    write(root / "cpu.max", "\x00\x01 not a quota")
    write(root / "cpu.cfs_quota_us", "soon")
    assert cgroup_quota(root, write(tmp_path / "self", "garbage without colons\n")) is None


def test_usable_cpus_is_the_quota_rounded_up_within_the_visible_cpus():
    assert usable_cpus(quota=1.5, visible=16) == 2
    assert usable_cpus(quota=0.2, visible=16) == 1
    assert usable_cpus(quota=32.0, visible=4) == 4
    assert usable_cpus(quota=None, visible=8) == 8


def test_threads_are_limited_only_below_the_visible_cpus_or_when_asked():
    assert thread_limit({}, quota=2.0, visible=16) == 2
    assert thread_limit({}, quota=None, visible=16) is None
    assert thread_limit({}, quota=16.0, visible=16) is None
    assert thread_limit({"CIFAR10_STUDIO_THREADS": "24"}, quota=2.0, visible=16) == 24
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(BadThreadCount, match="CIFAR10_STUDIO_THREADS"):
            thread_limit({"CIFAR10_STUDIO_THREADS": bad}, quota=None, visible=2)


def test_limit_threads_sets_the_variables_it_finds_unset():
    environ = {"CIFAR10_STUDIO_THREADS": "3", "OMP_NUM_THREADS": "1"}
    assert cpu_quota.limit_threads(environ) == 3
    assert environ["OMP_NUM_THREADS"] == "1"  # the environment's own choice stays
    assert all(environ[name] == "3" for name in cpu_quota.THREAD_VARIABLES if name != "OMP_NUM_THREADS")


PROBE = """
import json, cifar_demo.backend as backend
if backend.BACKEND == "tensorflow":
    import tensorflow as tf
    threads = [tf.config.threading.get_intra_op_parallelism_threads(),
               tf.config.threading.get_inter_op_parallelism_threads()]
else:
    import torch
    threads = [torch.get_num_threads(), torch.get_num_interop_threads()]
import os
print(json.dumps({"threads": threads, "omp": os.environ.get("OMP_NUM_THREADS")}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "torch"])
def test_the_chosen_count_reaches_the_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    environment = {key: value for key, value in os.environ.items() if key not in cpu_quota.THREAD_VARIABLES}
    environment.update(KERAS_BACKEND=backend, CIFAR10_STUDIO_THREADS="3", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"threads": [3, 3], "omp": "3"}


def test_a_bad_override_stops_any_entry_point_with_one_line():
    environment = {**os.environ, "CIFAR10_STUDIO_THREADS": "many", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "cifar_demo.data", "--help"], cwd=REPO, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["error: CIFAR10_STUDIO_THREADS='many' must be a whole number "
                                                  "of threads, 1 or more"]
