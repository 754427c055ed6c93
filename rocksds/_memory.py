"""How much memory this process may use: its memory cgroup's limit, or the machine's RAM.

Readers size their defaults from it (SPEC-independent choices of the reference
implementation): whether table files are memory-mapped, and the default block
cache. A container's limit is what matters, not the host's RAM, and the page
cache of mapped files is charged to the cgroup too. Standard library only;
any file that cannot be read counts as "no limit".
"""

from __future__ import annotations

import os
from typing import Optional

__all__ = ["memory_limit"]

_CGROUP_ROOT = "/sys/fs/cgroup"


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read(64).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _cgroup_limits() -> list[int]:
    """Limits of this process's memory cgroup and its ancestors (v1 and v2 layouts)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8", errors="replace") as fh:
            lines = fh.read(65536).splitlines()
    except OSError:
        return []
    limits = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _hid, controllers, rel = parts
        if controllers == "":  # cgroup v2
            base, name = _CGROUP_ROOT, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = os.path.join(_CGROUP_ROOT, "memory"), "memory.limit_in_bytes"
        else:
            continue
        rel = rel.strip("/")
        while True:
            value = _read_int(os.path.join(base, rel, name))
            if value is not None:
                limits.append(value)
            if not rel:
                break
            rel = os.path.dirname(rel)
    return limits


def _ram() -> Optional[int]:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> Optional[int]:
    """Bytes this process may use (page cache included): the smallest of its cgroup limits and RAM."""
    candidates = [v for v in (*_cgroup_limits(), _ram()) if v]
    return min(candidates) if candidates else None
