"""The Pulumi program: load this stack's config once, then declare the stack (infra/stack.py)."""

from infra.stack import main

main()
