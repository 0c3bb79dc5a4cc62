"""Which watchdog observer a drop directory needs, from the file system it is mounted on.

Why: inotify sees only writes made through the local kernel, so a drop on a network, FUSE
or VM-share mount must be polled; ``/proc/self/mountinfo`` tells which one it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: File system types on which inotify sees no changes made elsewhere (network, FUSE, VM shares).
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "vboxsf",
        "vmhgfs",
        "virtiofs",
        "ncpfs",
        "beegfs",
        "fuse",
    }
)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_fstype(path: Path, mountinfo: str | None = None) -> str | None:
    """File system type of the mount holding ``path`` (longest mount point prefix), None if unknown."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, right.split()[0]
    return fstype


def is_network_fs(fstype: str | None) -> bool:
    return bool(fstype) and (
        fstype in NETWORK_FS or fstype.startswith("fuse.") or fstype.startswith("fuseblk")
    )


@dataclass(frozen=True)
class ObserverChoice:
    kind: Literal["inotify", "polling"]
    reason: str


def choose_observer(setting: str, drop: Path, mountinfo: str | None = None) -> ObserverChoice:
    """What ``watch.observer`` means for this drop directory, with the reason (logged at start)."""
    if setting == "polling":
        return ObserverChoice("polling", "watch.observer = polling")
    if setting == "inotify":
        return ObserverChoice("inotify", "watch.observer = inotify")
    fstype = mount_fstype(drop, mountinfo)
    if is_network_fs(fstype):
        return ObserverChoice(
            "polling", f"drop dir is on a {fstype} mount: inotify sees no remote writes there"
        )
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return ObserverChoice("polling", "inotify is Linux-only")
    return ObserverChoice("inotify", f"drop dir is on a local {fstype or 'unknown'} file system")
