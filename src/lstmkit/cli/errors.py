"""The one error the command line prints without a traceback, and its one-line form."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad file, bad option): printed without traceback."""


def one_line(message: str) -> str:
    """``message`` on one line: its lines joined, whitespace runs kept as they are."""
    return "; ".join(line.strip() for line in message.splitlines() if line.strip())
