"""The one exception type SPA raises for problems with the user's input."""


class SPAError(Exception):
    """A problem with an input model, file or option; its message names the culprit.

    The CLI prints it as one line (``error: <message>``) and exits non-zero.
    """


class SPAWarning(UserWarning):
    """SPA did something other than asked, and says what (e.g. an adapter returned a converted model)."""
