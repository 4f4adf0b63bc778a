"""Checks from outside the sandbox: what a sample may have left in the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pytest_codeeval.sandbox.resources import UID_BASE, UID_SPAN

KEYS_AS = ("import os, sys\nuid = int(sys.argv[1])\nos.setgroups([]); os.setgid(uid); os.setuid(uid)\n"
           "print(open('/proc/keys').read())\n")


def keys_of(uid: int) -> list[str]:
    """The keys the sandbox uid holds, as it sees them (/proc/keys, what `keyctl show` reads),
    but its own empty keyrings (the kernel keeps those once made; they hold nothing)."""
    out = subprocess.run([sys.executable, "-c", KEYS_AS, str(uid)], capture_output=True, text=True, check=True).stdout
    keyrings = {f"_uid.{uid}: empty", f"_uid_ses.{uid}: 1"}
    return [line for line in out.splitlines() if line.strip() and line.split(" keyring ")[-1].strip() not in keyrings]


def sandbox_uids_with_keys() -> dict[int, list[str]]:
    """Every sandbox uid with a key in it (root sees every uid in /proc/key-users)."""
    uids = [int(line.split(":")[0]) for line in Path("/proc/key-users").read_text().splitlines()]
    found = {uid: keys_of(uid) for uid in uids if UID_BASE <= uid < UID_BASE + UID_SPAN}
    return {uid: keys for uid, keys in found.items() if keys}


def ipc_objects() -> list[str]:
    """SysV IPC objects of this IPC namespace (the host's, seen from the test)."""
    return [line for kind in ("shm", "msg", "sem") for line in Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]]
