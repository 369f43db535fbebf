"""The deployment runtime's known errors: one base, so that every command (``tools/deploy.py``
here, the ``mambaout_mm`` tools through ``mambaout_mm.utils.cli.run``) ends on them with one
``error:`` line instead of a traceback."""


class DeployError(Exception):
    """A known problem of a deployed folder or its inputs; the message says what to do."""
