"""The one error the command line prints without a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad path, bad file, bad option): printed without traceback."""
