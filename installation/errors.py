"""User errors: shown as one sentence (what, where, what to do), exit code 2, no traceback.

A leaf module like installation.records: hardware/ and models/ may raise these.
"""


class UserError(Exception):
    """Something the user can fix: a config value, a missing file, an absent device."""
