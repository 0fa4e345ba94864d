"""The one exception type for bad user input: its message is shown to the user as is."""


class SamedError(ValueError):
    """Bad input (file, shape, prompt, checkpoint) with a message meant for the user."""
