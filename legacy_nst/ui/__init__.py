"""Front ends: the command line and its subcommands, the console, notebooks."""
