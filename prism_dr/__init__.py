"""The `prism-dr` command line."""
