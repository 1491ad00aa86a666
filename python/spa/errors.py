"""The one exception type SPA raises for problems with the user's input."""


class SPAError(Exception):
    """A problem with an input model, file or option; its message names the culprit.

    The CLI prints it as one line (``error: <message>``) and exits non-zero.
    """


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def last_line(error: BaseException) -> str:
    """The last line of an exception's message (where C++ assertions put the reason), or its type name."""
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__


class SPAWarning(UserWarning):
    """SPA did something other than asked, and says what (e.g. an adapter returned a converted model)."""
