"""The exceptions a training run expects, and the one place that turns them into a one-line message.

Every command's `main` runs through `run_command`, which prints `describe_expected(error)` on stderr
and exits with code 2 for bad input (3 when the loss diverged); anything else is a bug and keeps its
traceback. A bad command line is bad input too: the commands parse with `seq2seq_tools.options.OptionParser`,
whose errors are an `InputError`, the base of `TrainingInputError`.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable

from seq2seq_tools.options import InputError

# Operating-system errors caused by where the user pointed us, not by the code.
USER_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EEXIST: "exists already",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
}


class TrainingInputError(InputError):
    """A problem with what the user asked for (data, columns, config keys, tokenizer), not a bug.

    The message is complete on its own: it names what was wrong and what to pass instead.
    """


class TrainingDivergedError(Exception):
    """The loss became NaN or infinite; the run stopped before the bad step changed the weights."""


def describe_expected(error: BaseException) -> str | None:
    """The one-line message for an expected error, or `None` for an unexpected one (a bug)."""
    if isinstance(error, (InputError, TrainingDivergedError)):
        message = str(error)
    elif isinstance(error, OSError) and error.errno in USER_ERRNOS:
        where = f"{error.filename}: " if error.filename else ""
        message = (
            f"{where}{USER_ERRNOS[error.errno]} ({error.strerror or error}); check --output-dir and the paths given"
        )
    else:
        return None
    return " ".join(message.split())  # one line, whatever the wrapped library put in its message


def run_command(action: Callable[[], object]) -> int:
    """`action()` as a command line's exit code: 0 when it returns, 2 for bad input and 3 for a
    diverged loss (one line on stderr); an unexpected error, a bug, propagates with its traceback."""
    try:
        action()
    except (InputError, TrainingDivergedError, OSError) as error:
        message = describe_expected(error)
        if message is None:
            raise  # a bug: keep the traceback
        print(f"error: {message}", file=sys.stderr)
        return 3 if isinstance(error, TrainingDivergedError) else 2
    return 0
