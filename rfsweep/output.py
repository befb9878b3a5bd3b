"""Writing OUT safely: checked first, written beside it, renamed into place only when complete.

Every writer (sweep files and parts, pareto -o, measure -o, report, draw,
plots) goes through `check_output_path` and `atomic_output`, so the promises
hold for all of them:

* OUT that is a device, FIFO or socket is refused (exit 2) before any work:
  renaming a file over it would replace e.g. /dev/null for every user.
* OUT that is a symbolic link writes through to its target (the link stays;
  the target is replaced atomically), with the same checks on the target.
* The temporary file `.NAME.PID.HOST.tmp[SUFFIX]` sits beside the target
  (readers of a directory skip '.' files). One left by a writer killed with
  SIGKILL is removed by the next writer of the same OUT once that process
  no longer runs on this host (and a line says so).
* A full disk, a quota or a file-size limit is `OutputError` (exit 1, not bad
  input), a directory one cannot write to `RfsweepError` (exit 2); either way
  the temporary file is gone and OUT is as it was.
* The rename runs with SIGINT/SIGTERM deferred (`signals.deferred`), so a
  signal lands either before it (OUT untouched) or after it, and then the
  exit message names OUT as complete (`signals.committed`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

from . import signals
from .errors import OutputError, RfsweepError

log = logging.getLogger("rfsweep")

# errors a user fixes by naming another OUT: exit 2; any other (a full disk, a quota, a size
# limit, an I/O error) is the machine's, not bad input: exit 1 (contract section 5)
INPUT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR,
                errno.EISDIR, errno.ELOOP, errno.EXDEV}
_SPECIAL = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def host_tag() -> str:
    """This host's short name, safe in a file name (writers on a shared filesystem differ by it)."""
    name = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9-]", "-", name)[:40] or "host"


def temporary_name(name: str, pid: int | None = None, suffix: str = "") -> str:
    """'.NAME.PID.HOST.tmp[SUFFIX]': the temporary file of OUT named NAME, written by process PID."""
    return f".{name}.{os.getpid() if pid is None else pid}.{host_tag()}.tmp{suffix}"


def temporary_path(out: Path, suffix: str = "") -> Path:
    """The hidden temporary file beside OUT for this process."""
    return out.with_name(temporary_name(out.name, suffix=suffix))


def special_kind(path: Path) -> str | None:
    """'a character device' etc. if `path` exists and is neither a regular file nor a directory."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    return next((what for test, what in _SPECIAL if test(mode)), None)


def _exists(path: Path, follow: bool = True) -> bool:
    """os.path.exists that never raises (names too long, NUL bytes, loops: not there)."""
    try:
        os.stat(path, follow_symlinks=follow)
        return True
    except (OSError, ValueError):
        return False


def refuse_special(path: Path, what: str = "output path") -> None:
    """RfsweepError if `path` is a device, FIFO or socket: never replaced, never written."""
    kind = special_kind(path)
    if kind is not None:
        raise RfsweepError(f"{what} {path} is {kind}; rfsweep writes regular files only "
                           "(to discard the output, write to a file in a temporary directory)")


def output_target(out: Path | str) -> Path:
    """The path a write of OUT replaces: OUT, or the target of OUT when it is a symbolic link."""
    out = Path(out)
    try:
        if out.is_symlink():
            return Path(os.path.realpath(out))
    except (OSError, ValueError):
        pass
    return out


def check_output_path(out: Path | str) -> Path:
    """Fail before any heavy work if OUT cannot be written; returns the path that will be replaced.

    Refused (exit 2): a missing or read-only directory, a directory at OUT, a
    device/FIFO/socket at OUT (or at its link target), a name the system
    cannot take (too long). A symbolic link is followed: its target is written.
    """
    out = Path(out)
    target = output_target(out)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        if "\0" in str(out):
            raise RfsweepError(f"output path contains a NUL byte: {out!r}")
        if not parent.is_dir():
            raise RfsweepError(f"output directory does not exist: {parent}")
        if target.is_dir():
            raise RfsweepError(f"output path is a directory: {out}")
    except OSError as exc:  # ENAMETOOLONG, EACCES on a parent: never a traceback
        if exc.errno == errno.ENAMETOOLONG:
            raise RfsweepError(f"output path is too long for this system: {_short(out)}") from None
        raise RfsweepError(f"cannot use output path {_short(out)}: {exc.strerror or exc}") from None
    refuse_special(target)
    if not os.access(parent, os.W_OK):
        raise RfsweepError(f"output directory is not writable: {parent}")
    return target


def _short(path, limit: int = 120) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]} ({len(text):,} characters)"


def _alive(pid: int) -> bool:
    """True if process `pid` runs on this host (or may: another user's)."""
    if pid <= 0:
        return True  # never signal process groups; keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def stale_temporaries(directory: Path, name_regex: str, prefix: str = ".") -> list[tuple[Path, int]]:
    """(path, pid) of temporary files in `directory` of outputs whose name matches `name_regex`
    and whose writer no longer runs on this host.

    Temporaries of other hosts (a shared filesystem), of live processes and
    of this process (it may be writing them) are never listed. Names without
    a host (`.NAME.PID.tmp`, written by earlier versions) count as this host's.
    """
    pattern = re.compile(r"\.(?:" + name_regex + r")\.(?P<pid>\d{1,10})(?:\.(?P<host>[A-Za-z0-9-]+))?\.tmp(?:\.[A-Za-z0-9]+)?")
    here = host_tag()
    try:
        entries = os.listdir(directory)
    except (OSError, ValueError):
        return []
    found = []
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        match = pattern.fullmatch(entry)
        if match is None or match.group("host") not in (None, here):
            continue
        pid = int(match.group("pid"))
        if pid != os.getpid() and not _alive(pid):
            found.append((directory / entry, pid))
    return found


def remove_stale_temporaries(out: Path | str, name_regex: str | None = None) -> list[Path]:
    """Remove the temporary files of OUT (or, with `name_regex`, of every output in OUT's directory
    whose name matches) left by writers killed with SIGKILL or by a crash; log a line for each."""
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if name_regex is None:
        found = stale_temporaries(directory, re.escape(out.name), prefix=f".{out.name}.")
    else:
        found = stale_temporaries(directory, name_regex)
    removed = []
    for path, pid in found:
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            path.unlink()
        except OSError:
            continue
        log.warning("note: removed %s, left by process %d, which was killed before finishing it", path, pid)
        removed.append(path)
    return removed


def write_error(out: Path, exc: OSError) -> Exception:
    """The exception to raise for an OSError while writing OUT: OutputError (exit 1) for a full
    disk, quota, size limit or I/O error; RfsweepError (exit 2) for what the user can fix
    (permissions, a read-only filesystem, a name too long)."""
    detail = str(exc).split("Detail:")[-1].strip() or type(exc).__name__
    if getattr(exc, "errno", None) in INPUT_ERRNOS:
        return RfsweepError(f"cannot write {_short(out)}: {detail}")
    return OutputError(f"cannot write {_short(out)}: {detail}; the previous file (if any) is untouched")


def commit(tmp: Path, out: Path, target: Path | None = None) -> None:
    """Rename the complete temporary file over `target` (OUT or its link target), signals deferred.

    OUT is re-checked first: a device or FIFO that appeared meanwhile is
    still never replaced. After the rename a signal cannot say 'nothing was
    written': `signals.committed(out)` records that OUT is complete.
    """
    target = out if target is None else target
    refuse_special(target)
    with signals.deferred():
        os.replace(tmp, target)
        signals.committed(out)


@contextmanager
def atomic_output(out_path: Path | str, suffix: str = ""):
    """Yield a temporary path beside OUT; rename it into place if the block succeeds.

    `suffix` is appended to the temporary name (image writers pick the
    format by extension). On any failure, a signal included, the temporary
    file is removed and OUT is left as it was.
    """
    out = Path(out_path)
    target = check_output_path(out)
    remove_stale_temporaries(target)
    tmp = temporary_path(target, suffix)
    try:
        yield tmp
        commit(tmp, out, target)
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise write_error(out, exc) from None
    finally:
        _unlink_quietly(tmp)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass
