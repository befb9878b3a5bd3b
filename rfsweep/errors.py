"""The one domain exception: bad user input. The CLI maps it to exit code 2."""


class RfsweepError(ValueError):
    """Raised for any input a user can fix: a bad stack, spec, flag or file.

    The message is one line a person can act on, naming the layer (1-based)
    or the key at fault and what is allowed.
    """


class OutputError(OSError):
    """Writing OUT failed mid-run (disk full, quota, file-size limit): exit code 1.

    Not a user-input error, but still one clear line: the temporary file is
    gone and whatever was at OUT before is untouched.
    """


def unknown_name(what: str, name: str, names) -> RfsweepError:
    """`what 'name'` is not one of `names`: suggest the closest few (difflib) instead of listing all."""
    import difflib

    names = [str(n) for n in names]
    close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(repr(c) for c in close) + "?"
    else:
        hint = "there are " + ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    return RfsweepError(f"{what} {name!r}; {hint}")


def read_user_file(path, what: str) -> str:
    """The text of a file the user named; RfsweepError (exit 2) if missing or unreadable."""
    from pathlib import Path

    path = Path(path)
    try:
        found = path.is_file()
    except (OSError, ValueError):  # a name too long for the system: no such file
        found = False
    if not found:
        shown = str(path) if len(str(path)) <= 120 else f"{str(path)[:80]}... ({len(str(path)):,} characters)"
        raise RfsweepError(f"{what} file not found: {shown}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise RfsweepError(f"cannot read {what} file {path}: {exc}") from None


def read_user_json(path, what: str):
    """The parsed JSON of a file the user named; RfsweepError (exit 2) naming where it is broken."""
    import json
    from pathlib import Path

    path = Path(path)
    text = read_user_file(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RfsweepError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # over-long ints, deep nesting
        raise RfsweepError(f"{path}: invalid JSON: {type(exc).__name__}") from None
