"""Errors shared by every package."""


class UserError(Exception):
    """An expected failure caused by the user's input (bad file, unknown persona, ...).

    The command line prints it as one line and exits non-zero; no traceback.
    """
