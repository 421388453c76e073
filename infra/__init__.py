"""Prism's infrastructure as Pulumi components: typed config plus one component per concern."""
