"""Shared by the benchmark scripts: memory figures of this process from /proc (Linux only)."""


def proc_status_kib(field: str) -> int:
    """A `/proc/self/status` field in KiB, e.g. "VmRSS" (resident now) or "VmHWM" (peak resident)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")
