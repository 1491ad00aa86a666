"""The one exception type SPA raises for problems with the user's input."""


class SPAError(Exception):
    """A problem with an input model, file or option; its message names the culprit.

    The CLI prints it as one line (``error: <message>``) and exits non-zero.
    """
