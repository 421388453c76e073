"""The account bootstrap's Pulumi program (thin: bootstrap/program.py declares everything)."""

from bootstrap.program import main

main()
