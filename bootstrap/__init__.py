"""The account bootstrap: a second Pulumi project (this directory), applied once per AWS
account by an admin, before the stacks' first run. Its roles, policies and keys come from
infra/ci_roles.py, the table `prism-dr iam policy` prints."""
