"""One writer per workdir: an exclusive lock on `<workdir>/.lock` while a run trains there.

  with contextlib.ExitStack() as held:
    held.enter_context(WorkdirLock(workdir))     # WorkdirInUse if another process trains there

A second process on the same workdir fails at once, naming the holder (pid, host and start time,
which the holder writes into the lock file). The lock is `fcntl.flock`: the kernel drops it when
the holder's process ends, however it ends, so a SIGKILL leaves no stale lock behind. Only
process 0 of a multi-process run takes it; bucket workdirs (gs://...) and file systems without
flock (some NFS mounts) are not locked.
"""
import errno
import fcntl
import json
import os
import socket
import time

import jax

from attnlab import files
from attnlab.errors import UserError

LOCK_FILE = ".lock"


class WorkdirInUse(UserError):
  pass


def check_workdir(workdir: str):
  """ValueError if `workdir` exists and is not a directory."""
  if not files.is_remote(workdir) and os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir={workdir} is a file, not a directory; give a directory (it is "
                     "created if it does not exist)")


def _holder(path: str) -> str:
  try:
    with open(path) as f:
      info = json.loads(f.read() or "{}")
  except (OSError, ValueError):
    info = {}
  if not info:
    return "another process"
  since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
  return f"pid {info.get('pid')} on host {info.get('host')} (since {since})"


class WorkdirLock:
  """Holds `<workdir>/.lock` from __enter__ to __exit__ (a context manager; not re-entrant)."""

  def __init__(self, workdir: str, enabled: bool = None):
    self.workdir = workdir
    self.enabled = (jax.process_index() == 0 and not files.is_remote(workdir)) \
        if enabled is None else enabled
    self._file = None

  def __enter__(self):
    check_workdir(self.workdir)
    if not self.enabled:
      return self
    os.makedirs(self.workdir, exist_ok=True)
    path = os.path.join(self.workdir, LOCK_FILE)
    f = open(path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      f.close()
      if e.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
        raise WorkdirInUse(
            f"workdir {self.workdir} is in use by {_holder(path)}; wait for that run to end (or "
            "stop it), or use another --workdir") from None
      if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):  # no flock on this file system
        return self
      raise
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}))
    f.flush()
    self._file = f
    return self

  def __exit__(self, *exc):
    self.release()

  def release(self):
    if self._file is not None:
      self._file.seek(0)
      self._file.truncate()  # the holder's name goes with the lock
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None
