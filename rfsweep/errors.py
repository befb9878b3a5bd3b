"""The one domain exception: bad user input. The CLI maps it to exit code 2."""


class RfsweepError(ValueError):
    """Raised for any input a user can fix: a bad stack, spec, flag or file.

    The message is one line a person can act on, naming the layer (1-based)
    or the key at fault and what is allowed.
    """
