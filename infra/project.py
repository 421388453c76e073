"""Which Pulumi project a command works on, found the way the pulumi CLI finds it.

No pulumi import here: the command line resolves the directory before loading anything heavy.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.errors import ConfigError

PROJECT_FILES = ("Pulumi.yaml", "Pulumi.yml")
PROJECT_NAME = "prism-infra"


def project_file(directory: Path) -> Path | None:
    return next((p for p in (directory / n for n in PROJECT_FILES) if p.is_file()), None)


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest directory holding Pulumi.yaml: `start` (default: the current directory),
    then each of its parents, as `pulumi` does. None if there is none."""
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if project_file(d) is not None), None)


def resolve_project_dir(given: Path | None, option: str = "--project-dir") -> Path:
    """`given` if it holds this project's Pulumi.yaml, else the one found from the current
    directory up. Raises ConfigError (exit 2 on the command line) naming the fix."""
    if given is not None:
        directory = given.resolve()
        if not directory.is_dir():
            raise ConfigError(option, f"{given} is not a directory")
        if project_file(directory) is None:
            raise ConfigError(
                option, f"{given} holds no Pulumi.yaml: pass the directory of prism-infra's"
            )
    else:
        found = find_project_dir()
        if found is None:
            raise ConfigError(
                "Pulumi.yaml",
                f"is not in {Path.cwd()} or any parent: run from a prism-infra checkout or "
                f"pass {option} DIR",
            )
        directory = found
    path = project_file(directory)
    assert path is not None
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise ConfigError(str(path), "is not valid YAML; fix the file") from None
    name = doc.get("name") if isinstance(doc, dict) else None
    if name != PROJECT_NAME:
        raise ConfigError(
            str(path),
            f"is the Pulumi project {name!r}, not {PROJECT_NAME}: run from a prism-infra "
            f"checkout or pass {option} DIR",
        )
    return directory
