"""Measured figures in one place: each bench rewrites its own section of bench/RESULTS.md.

Figures copied into prose go stale when hosts, versions or code change; a section
written by the run itself carries its date, CPU, Keras backend and exact command, so a
reader can tell what a number was measured on and rerun it.
"""

import datetime
import math
import numbers
import os
import platform
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Benchmark results

Written by the benches in this folder, never by hand: each run of `python -m bench.<name>`
replaces its own section (`bench/results.py`). The machines here are shared 2-core VMs
whose speed drifts by up to 2x over hours, so compare figures measured side by side in
one run (the ratios) rather than across sections.
"""


def cpu_description():
    """The CPU's model name, core count and whether it has AMX bf16 tiles (from /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, amx_bf16: {'yes' if 'amx_bf16' in flags else 'no'}"


def backend_description():
    """Keras, its backend and the device training would use, e.g. "Keras 3.15.1 on
    TensorFlow 2.21.0, CPU" (importing cifar_demo first keeps TensorFlow's start-up quiet)."""
    from cifar_demo.backend import describe, resolve_device

    return describe(resolve_device("auto"))


def invoked_command():
    """The command that ran this bench, as `python -m bench.<name> [arguments]`."""
    module = Path(sys.argv[0]).stem
    data = "CIFAR10_PATH=... " if os.environ.get("CIFAR10_PATH") else ""
    return f"{data}python -m bench.{module} {shlex.join(sys.argv[1:])}".rstrip()


def format_value(value):
    """Four significant digits without exponent notation; whole numbers in full; text as is."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real) and math.isfinite(value) and value != 0:
        decimals = max(0, 3 - math.floor(math.log10(abs(value))))
        return f"{float(value):,.{decimals}f}"
    return str(value)


def section(bench, figures, command, notes=""):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {bench}",
        "",
        f"- date: {now}",
        f"- CPU: {cpu_description()}",
        f"- {backend_description()}",
        f"- command: `{command}`",
    ]
    if notes:
        lines.append(f"- notes: {notes}")
    lines += ["", "| figure | value | unit |", "|---|---:|---|"]
    lines += [f"| {name} | {format_value(value)} | {unit} |" for name, (value, unit) in figures.items()]
    return "\n".join(lines) + "\n"


def read_sections(text):
    """{bench: section text} of an existing RESULTS.md (everything under each '## ' heading)."""
    sections, current = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = ""
        if current is not None:
            sections[current] += line
    return sections


def record(bench, figures, command=None, notes=""):
    """Replaces `bench`'s section of bench/RESULTS.md with `figures`, {what: (value, unit)},
    stamped with the date, CPU, Keras backend and `command` (default: this process's)."""
    sections = read_sections(RESULTS.read_text()) if RESULTS.exists() else {}
    sections[bench] = section(bench, figures, command or invoked_command(), notes)
    text = HEADER + "".join("\n" + sections[name].rstrip("\n") + "\n" for name in sorted(sections))
    temporary = RESULTS.with_suffix(".md.tmp")
    temporary.write_text(text)
    temporary.replace(RESULTS)
    print(f"recorded in bench/RESULTS.md, section {bench}")
