"""Project Prism's DR policy pack (Pulumi CrossGuard): the DR objectives as policies.

The rules are plain functions (rds, host, access, tunnel, drill) listed in catalog.py; pack.py
wraps them for `pulumi preview --policy-pack policy`, offline.py runs them on `prism-dr plan`.
"""
