"""Bounded, non-blocking reads of vendor files.

The drop directory is hostile territory: symlinks out of it, FIFOs and devices named
``*.csv``, gzip bombs, files that shrink while queued. Everything here is read-only.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

from algoseek_sync.errors import BadFileError, FileGoneError

UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class FileContent:
    size: int
    mtime_ns: int
    sha256: str  # of the bytes as delivered (compressed, if gzip)
    data: bytes  # decompressed, BOM stripped


def open_regular(root: Path, rel_path: str) -> tuple[int, os.stat_result]:
    """Open ``root/rel_path`` read-only without following a final symlink or blocking on a FIFO."""
    path = root / rel_path
    if "/" in rel_path:  # a file directly in the root has the root as its parent: nothing to resolve
        real_parent = os.path.realpath(path.parent)
        real_root = os.path.realpath(root)
        if os.path.commonpath([real_parent, real_root]) != real_root:
            raise BadFileError("parent directory resolves outside the drop directory; not followed")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FileGoneError("file vanished before it was read") from None
    if stat.S_ISLNK(st.st_mode):
        raise BadFileError("symbolic link; links are never followed")
    if not stat.S_ISREG(st.st_mode):
        raise BadFileError("not a regular file; never opened")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileGoneError("file vanished before it was read") from None
    except PermissionError:
        raise BadFileError("permission denied (fix it, then `algoseek-sync reprocess --file`)") from None
    except OSError as exc:
        raise BadFileError(f"cannot open: {exc.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise BadFileError("not a regular file; never opened")
    return fd, st


GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around deflate data


def decompress(rel_path: str, raw: bytes, max_bytes: int) -> bytes:
    """Gunzip every member, with a cap on the decompressed size (gzip bombs) and a check for
    truncation. zlib directly: one C call per member (the gzip module's Python reader loop
    held the GIL for a quarter of a millisecond per file)."""
    chunks: list[bytes] = []
    total = 0
    rest = raw
    try:
        while rest:
            inflate = zlib.decompressobj(GZIP_WBITS)
            chunk = inflate.decompress(rest, max_bytes - total + 1)  # never more than one byte past the cap
            total += len(chunk)
            if total > max_bytes:
                raise BadFileError(
                    f"decompresses to more than limits.max_decompressed_bytes ({max_bytes} bytes); refused"
                )
            chunks.append(chunk)
            if not inflate.eof:
                raise BadFileError("truncated gzip (stream ends before its end marker)")
            rest = inflate.unused_data.lstrip(b"\0")  # members follow each other; zero padding ends them
    except zlib.error as exc:
        raise BadFileError(f"corrupt gzip: {exc}") from None
    return b"".join(chunks)


def _read_all(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes (a short read is retried: pipes and network filesystems return less)."""
    parts: list[bytes] = []
    while limit > 0 and (part := os.read(fd, limit)):
        parts.append(part)
        limit -= len(part)
    return b"".join(parts)


def read_file(root: Path, rel_path: str, *, max_file_bytes: int, max_decompressed_bytes: int) -> FileContent:
    """Read one vendor file whole, within the configured limits."""
    fd, st = open_regular(root, rel_path)
    try:
        if st.st_size > max_file_bytes:
            raise BadFileError(
                f"{st.st_size} bytes is above limits.max_file_bytes ({max_file_bytes}); not read"
            )
        raw = _read_all(fd, st.st_size + 1)  # one byte more shows a file still growing
    except PermissionError:
        raise BadFileError("permission denied") from None
    finally:
        os.close(fd)
    if len(raw) > max_file_bytes:
        raise BadFileError(f"grew above limits.max_file_bytes ({max_file_bytes}) while read")
    if not raw:
        raise BadFileError("file is empty")
    digest = hashlib.sha256(raw).hexdigest()
    data = decompress(rel_path, raw, max_decompressed_bytes) if rel_path.endswith(".gz") else raw
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    if not data or data.isspace():  # not data.strip(): that would copy the whole file
        raise BadFileError("file is empty")
    return FileContent(size=len(raw), mtime_ns=st.st_mtime_ns, sha256=digest, data=data)
