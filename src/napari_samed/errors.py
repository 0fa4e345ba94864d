"""The one exception type for bad user input: its message is shown to the user as is."""


class SamedError(ValueError):
    """Bad input (file, shape, prompt, checkpoint) with a message meant for the user."""


class SamedWarning(UserWarning):
    """Something the user should know that did not stop the work (a damaged cache entry was recomputed)."""
