"""Subcommands beyond the basic ones, one module each (see ``EXTRA_COMMANDS`` in ``__main__``)."""
