"""The errors the ``fluxion`` command raises itself; fluxion's own errors pass through as they are.

Every :class:`~fluxion.FluxionError` ends the command with one message on stderr and exit code 1;
a :class:`UsageError` (a command line that cannot mean anything) exits with 2, as argparse does.

>>> error = UsageError("--input x: the spec's inputs are image")
>>> error.exit_code, isinstance(error, CliError)
(2, True)
"""

from fluxion.errors import FluxionError


class CliError(FluxionError):
    """Something the command cannot do (a missing program, a factory that cannot be imported).

    >>> CliError("dot not found").exit_code
    1
    """

    exit_code = 1


class UsageError(CliError):
    """A command line whose options contradict each other or the spec they are given with.

    >>> print(UsageError("--depth must be 0 or more"))
    --depth must be 0 or more
    """

    exit_code = 2
