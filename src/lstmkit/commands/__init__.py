"""CLI subcommands, one module per group; each defines ``add_commands(subparsers)``."""
