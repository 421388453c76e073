"""Resource options a component hands to its children."""

from __future__ import annotations

from typing import Any

import pulumi


def child_options(
    component: pulumi.Resource, opts: pulumi.ResourceOptions | None, **extra: Any
) -> pulumi.ResourceOptions:
    """The component as parent (providers follow from it), plus what a caller asked of the
    whole component and that the engine does not pass down by itself: `depends_on` (a drill
    waiting on its network), `protect`, `retain_on_delete`. Not aliases, ids or imports: those
    name the component itself. `extra` (e.g. ignore_changes) wins."""
    given = opts or pulumi.ResourceOptions()
    options = pulumi.ResourceOptions(
        parent=component,
        depends_on=given.depends_on,
        protect=given.protect,
        retain_on_delete=given.retain_on_delete,
    )
    return options.merge(pulumi.ResourceOptions(**extra)) if extra else options
