"""Who holds a lock or an inbox item: `machine/pid/nonce`, and whether that holder is known to be dead.

`machine` is `hostname~tag`, the tag a digest of the kernel's boot id and this process's pid namespace: the
space in which a pid means one process. A holder of this very pid space whose process is gone is dead at once
(a gunicorn worker killed mid-reply), so what it held is taken over without waiting for its lease. Any other
holder is never judged here, its lease decides: another machine, and also a replica that shares this
machine's hostname (host networking) but runs in another container, whose pids say nothing here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import uuid

BOOT_ID = "/proc/sys/kernel/random/boot_id"
PID_NAMESPACE = "/proc/self/ns/pid"

_machine: str | None = None
_owner: tuple[int, str] | None = None
_held: set[str] = set()  # lock tokens this process holds now, whichever store object took them
_held_mutex = threading.Lock()


def this_machine() -> str:
    """The pid space of this process, as holder names begin: `hostname~tag`. Where the boot id or the pid
    namespace cannot be read (not Linux), the tag is random for this process: no other is ever judged."""
    global _machine
    if _machine is None:
        try:
            with open(BOOT_ID, encoding="ascii") as f:
                space = f.read().strip() + "|" + os.readlink(PID_NAMESPACE)
        except OSError:
            space = uuid.uuid4().hex
        _machine = f"{socket.gethostname()}~{hashlib.sha256(space.encode()).hexdigest()[:12]}"
    return _machine


def process_owner() -> str:
    """This process's holder name (recomputed after a fork, when the pid changes)."""
    global _owner
    pid = os.getpid()
    if _owner is None or _owner[0] != pid:
        _owner = (pid, f"{this_machine()}/{pid}/{uuid.uuid4().hex[:12]}")
    return _owner[1]


def holder_token() -> str:
    """A fresh token for one lock hold, naming this process."""
    return f"{process_owner()}/{uuid.uuid4().hex}"


def hold(token: str) -> None:
    with _held_mutex:
        _held.add(token)


def let_go(token: str) -> None:
    with _held_mutex:
        _held.discard(token)


def is_stale(holder: str) -> bool:
    """Can a lock held under `holder` be taken over now? Its process died, or it is this process's own
    token that no code holds any more (its release failed: the store was down at that moment)."""
    if holder.startswith(process_owner() + "/"):
        with _held_mutex:
            return holder not in _held
    return is_dead(holder)


def is_dead(holder: str) -> bool:
    """True only for a holder of this pid space (`this_machine`) whose process no longer exists (or is a
    zombie). A holder name of another form, or from another boot or container, is never dead here."""
    parts = holder.split("/")
    if len(parts) < 3 or parts[0] != this_machine() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return not holder.startswith(process_owner())  # an earlier process that had our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    try:  # a killed child not yet reaped by its parent is dead too
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
