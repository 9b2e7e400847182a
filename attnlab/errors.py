"""`UserError`: a mistake in what the user asked for; `Fault`: the machine or a file failed the run.

The library raises ValueError for a bad config field, value or grid (naming the field, the value
and the valid choices), FileNotFoundError for a missing file, and a `UserError` subclass for
the rest (a workdir in use); `attnlab.cli` turns all of them into one or two lines without a
traceback and exit code 2.

A `Fault` is not the user's mistake: a checkpoint whose data cannot be read, a full disk, a
file-size limit, a read-only file system, memory that cannot hold the run. `fault_message` also
recognises these in the errors that other libraries raise for them (orbax and TensorStore wrap
the OS error in a ValueError whose text carries `os_error_code`); the command line shows one line
naming the file or resource and what to do, and exits with FAULT_EXIT_CODE.
"""
import errno
import os
import re
from typing import Optional

FAULT_EXIT_CODE = 74  # EX_IOERR of sysexits.h: an I/O error, distinct from 2 (a user mistake)

_OS_FAULTS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file-size limit (ulimit -f) was reached",
    errno.EROFS: "the file system is read-only",
}
_STRERRORS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
              "File too large": errno.EFBIG, "Read-only file system": errno.EROFS}
_MEMORY = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory")


class UserError(Exception):
  """An error whose message tells the user what to change; no traceback is needed to act on it."""


class Fault(Exception):
  """The machine or a file failed the run; the message names it and says what to do."""


def _chain(error: BaseException):
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    yield error
    error = error.__cause__ or error.__context__


def _path_in_traceback(error: BaseException):
  """The path the innermost frame of error's traceback was writing (its local `self`, `path` or
  `file`): an OSError raised when a file is closed, as etils' write_text in orbax's threads, names
  none."""
  found, tb = None, error.__traceback__
  while tb is not None:
    local = tb.tb_frame.f_locals
    found = next((local[n] for n in ("self", "path", "file")
                  if isinstance(local.get(n), os.PathLike)), found)
    tb = tb.tb_next
  return found


def _where(error: BaseException) -> str:
  """The file an OS error or a TensorStore message names, cut at orbax's temporary folder."""
  path = getattr(error, "filename", None)
  if not path and isinstance(error, OSError):
    path = _path_in_traceback(error)
  for pattern in (r'local file "([^"]+)"', r'Failed writing: "([^"]+)"'):
    match = None if path else re.search(pattern, str(error))
    path = match.group(1) if match else path
  if not path:
    return ""
  return " writing " + re.sub(r"\.orbax-checkpoint-tmp.*$", "", str(path))


def fault_message(error: BaseException) -> Optional[str]:
  """One line for an error that is a fault of the machine or of a file; None for any other."""
  for e in _chain(error):
    if isinstance(e, Fault):
      return str(e)
    code = e.errno if isinstance(e, OSError) and e.errno in _OS_FAULTS else None
    text = str(e)
    if code is None:
      match = re.search(r"os_error_code='?(\d+)", text)
      code = int(match.group(1)) if match and int(match.group(1)) in _OS_FAULTS else None
    if code is None:
      code = next((c for s, c in _STRERRORS.items() if s in text), None)
    if code is not None:
      return (f"{_OS_FAULTS[code]}{_where(e)}. Nothing saved before it is lost: make room (or "
              "write to another --workdir) and rerun the same command to resume from the last "
              "complete checkpoint")
    if isinstance(e, MemoryError) or any(s in text for s in _MEMORY):
      return ("out of memory: the run does not fit this machine's memory; use a smaller "
              "batch_size, seq_len or model, or a machine with more memory")
  return None
