"""What the memory benchmarks read of their own process: the kernel's RSS figures (Linux).

Imported by ``load_weights.py`` and ``zoo.py``, which run each measurement in a fresh process.
"""


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` figure in KiB, such as ``VmRSS`` or ``VmHWM`` (the peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where that is refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True
