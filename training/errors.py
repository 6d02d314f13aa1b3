"""The training script's two exception types: bad input (`main` turns it into a message on stderr and
exit code 2) and a diverged loss (exit code 3)."""


class TrainingInputError(Exception):
    """A problem with what the user asked for (data, columns, config keys, tokenizer), not a bug.

    The message is complete on its own: it names what was wrong and what to pass instead.
    """


class TrainingDivergedError(Exception):
    """The loss became NaN or infinite; the run stopped before the bad step changed the weights."""
