"""`UserError`: a mistake in what the user asked for, shown at the command line as one line.

The library raises ValueError for a bad config field, value or grid (naming the field, the value
and the valid choices), FileNotFoundError for a missing file, and a `UserError` subclass for
the rest (a workdir in use, a damaged checkpoint); `attnlab.cli` turns all of them into one or
two lines without a traceback.
"""


class UserError(Exception):
  """An error whose message tells the user what to change; no traceback is needed to act on it."""
