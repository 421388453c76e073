"""Restore drills: plan, stand up, verify, record, tear down."""
