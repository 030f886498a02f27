"""How many threads the backend should compute with: the CPUs this process may really use.

A container can show more CPUs than its quota lets it use (a Space's 2 vCPUs on a 16-core
host). TensorFlow and PyTorch size their thread pools by the CPUs they see, so they start
one thread per visible CPU and the 2 real cores thrash (bench/threads.py measures it).
`thread_limit()` reads the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us` and
`cpu.cfs_period_us`), the affinity mask and the CPU count; where the quota allows fewer
CPUs than the process sees, or CIFAR10_STUDIO_THREADS names a count, `limit_threads()`
sets the thread variables the libraries read when they load (cifar_demo/__init__.py
calls it before Keras is imported), and cifar_demo/backend.py passes the same count to the
backend's own thread settings. Standard library only: `import cifar_demo` stays light.
"""

import math
import os
from pathlib import Path

OVERRIDE = "CIFAR10_STUDIO_THREADS"
CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")
# Read when each library loads: OpenMP (PyTorch, oneDNN), OpenBLAS, MKL, TensorFlow's two
# pools. A value the environment already gives one of them is kept. JAX has no such
# setting: XLA's CPU client sizes its pool by the CPUs it sees, and the XLA_FLAGS once
# suggested for it (jax-ml/jax#743) no longer limit it (measured on jax 0.10).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")


class BadThreadCount(SystemExit):
    """CIFAR10_STUDIO_THREADS is not a positive whole number. A SystemExit, like
    runtime.BackendUnavailable: the app and every CLI stop with one line, no traceback."""


def parse_cpu_max(text):
    """cgroup v2 `cpu.max` ("QUOTA PERIOD" in microseconds, QUOTA "max" for none) -> CPUs
    allowed (float), or None without a quota or for text that is not of that form."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def parse_cfs(quota_text, period_text):
    """cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` -> CPUs allowed, or None (a
    quota of -1 means none; unreadable text is treated as none)."""
    return _ratio(quota_text.strip(), period_text.strip())


def _ratio(quota, period):
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def own_cgroups(self_cgroup=SELF_CGROUP):
    """The cgroup paths /proc/self/cgroup names for this process: v2's ("0::/path") and
    v1's cpu controller; empty where the file cannot be read."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return []
    paths = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and (parts[1] == "" or "cpu" in parts[1].split(",")):
            paths.append(parts[2])
    return paths


def cgroup_quota(root=CGROUP_ROOT, self_cgroup=SELF_CGROUP):
    """The smallest CPU quota (in CPUs) of this process's cgroup and its ancestors, under
    a v2 or a v1 hierarchy mounted at `root`; None where no quota applies or none can be read.

    Inside a container the cgroup namespace usually shows the process's own cgroup as the
    mount's root, so `root` itself is always read as well."""
    folders = {root}
    for path in own_cgroups(self_cgroup):
        for base in (root, root / "cpu", root / "cpu,cpuacct"):
            folder = base / path.lstrip("/")
            while folder != base and base in folder.parents:
                folders.add(folder)
                folder = folder.parent
            folders.add(base)
    quotas = [quota for folder in folders if (quota := _folder_quota(folder)) is not None]
    return min(quotas, default=None)


def _folder_quota(folder):
    try:
        return parse_cpu_max((folder / "cpu.max").read_text())
    except OSError:
        pass
    try:
        return parse_cfs((folder / "cpu.cfs_quota_us").read_text(), (folder / "cpu.cfs_period_us").read_text())
    except OSError:
        return None


def visible_cpus():
    """The CPUs the libraries size their pools by: the affinity mask where there is one,
    else the CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def usable_cpus(quota=None, visible=None):
    """CPUs this process may use: the quota rounded up, the visible CPUs, whichever is
    fewer, and at least 1. Reads the quota and the visible CPUs where they are not given."""
    quota = cgroup_quota() if quota is None else quota
    visible = visible_cpus() if visible is None else visible
    count = visible if quota is None else min(visible, math.ceil(quota))
    return max(1, count)


def thread_limit(environ=os.environ, quota=None, visible=None):
    """The thread count to impose: CIFAR10_STUDIO_THREADS where set, else the usable CPUs
    where they are fewer than the visible ones; None leaves the libraries' own choice."""
    override = environ.get(OVERRIDE, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise BadThreadCount(f"error: {OVERRIDE}={override!r} must be a whole number of threads, 1 or more")
        return int(override)
    visible = visible_cpus() if visible is None else visible
    usable = usable_cpus(quota, visible)
    return usable if usable < visible else None


def limit_threads(environ=os.environ):
    """Sets the thread variables (those not already set) to thread_limit(); returns it."""
    count = thread_limit(environ)
    if count is not None:
        for name in THREAD_VARIABLES:
            environ.setdefault(name, str(count))
    return count
