"""One module per ``backprop-harness`` subcommand (see :mod:`reports.cli`)."""
