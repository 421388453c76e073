"""Faster cold start for one-shot offline runs (`prism-dr plan`): provider packages load only
the resource modules the program touches.

Pulumi's generated provider packages (pulumi_cloudflare, and each service package of
pulumi_aws such as `pulumi_aws.ec2`) star-import every resource module in their `__init__`:
pulumi_cloudflare alone is ~780 modules and 11 MB of generated types, about two seconds of a
three-second budget, for the four Cloudflare resources the stacks declare.

`install()` puts a finder in front of those packages. Their `__init__` runs as written except
for its `from .x import *` lines; a name is then looked up on first use in the module the
generator put it in (`ZeroTrustTunnelCloudflared` in `zero_trust_tunnel_cloudflared`,
`get_ami_output` in `get_ami`, nested `...Args` in `_inputs`, nested output types in
`outputs`). A name found nowhere by that rule makes the package run its star-imports after
all, in their order, so the result is the same object an eager import would give: only
slower. Resource registration (`_utilities.register`) and lazy subpackages still run, since
they are not star-imports.

Only the plan command installs it (a process that runs one program and exits); `pulumi up`
and the test suite import the packages as they are. tests/infra/test_slim_import.py proves
the plan a slim import produces is the plan an eager import produces.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

# Packages whose __init__ star-imports every resource module. `pulumi_aws` itself is already
# lazy (its services are lazy_import'ed), so only its service packages are slimmed.
_SLIM_ROOTS = ("pulumi_cloudflare",)
_SLIM_CHILDREN_OF = ("pulumi_aws",)

_STAR_IMPORT = re.compile(r"^from \.([A-Za-z_][A-Za-z0-9_]*) import \*$")
_OUTPUTS_IMPORT = "from . import outputs"
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_LOCK = threading.RLock()


class Finder(importlib.abc.MetaPathFinder):
    """Slims the packages named in `roots` and the direct subpackages of `children_of`."""

    def __init__(
        self, roots: tuple[str, ...] = _SLIM_ROOTS, children_of: tuple[str, ...] = _SLIM_CHILDREN_OF
    ) -> None:
        self._roots = roots
        self._children_of = children_of

    def _slimmed(self, fullname: str) -> bool:
        if fullname in self._roots:
            return True
        parent, _, child = fullname.rpartition(".")
        return parent in self._children_of and bool(child) and not child.startswith("_")

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if not self._slimmed(fullname):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if (
            spec is None
            or spec.submodule_search_locations is None  # a plain module: nothing to slim
            or not isinstance(spec.loader, importlib.machinery.SourceFileLoader)
        ):
            return spec
        spec.loader = _SlimLoader(spec.loader)
        return spec


class _SlimLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.machinery.SourceFileLoader) -> None:
        self._real = real

    def create_module(self, spec: Any) -> None:
        return None  # the default module object

    def exec_module(self, module: ModuleType) -> None:
        source = Path(self._real.path).read_text(encoding="utf-8")
        kept: list[str] = []
        star_modules: list[str] = []
        for line in source.splitlines():
            match = _STAR_IMPORT.match(line)
            if match:
                star_modules.append(match.group(1))
                kept.append("")  # keep line numbers true for tracebacks
            elif line == _OUTPUTS_IMPORT:
                star_modules.append("outputs")  # a submodule import, kept in its place
                kept.append("")
            else:
                kept.append(line)
        namespace = module.__dict__
        namespace["__getattr__"] = _Resolver(module, star_modules)
        exec(compile("\n".join(kept), self._real.path, "exec"), namespace)


def _snake(name: str) -> str:
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def _candidates(name: str) -> list[str]:
    """Where Pulumi's Python generator puts `name`, most likely first."""
    if not name[:1].isupper():  # a function: get_ami and get_ami_output both live in get_ami
        return list(dict.fromkeys([name, name.removesuffix("_output")]))
    for suffix in ("ArgsDict", "Args"):
        if name.endswith(suffix):
            return [_snake(name.removesuffix(suffix)), "_inputs"]
    stem = name.removeprefix("Awaitable").removesuffix("Result")
    return [_snake(name), _snake(stem), "outputs"]


class _Resolver:
    """The package's module-level `__getattr__` (PEP 562)."""

    def __init__(self, module: ModuleType, star_modules: list[str]) -> None:
        self._module = module
        self._star_modules = star_modules
        self._eager = False

    def __call__(self, name: str) -> Any:
        namespace = self._module.__dict__
        with _LOCK:
            if name in namespace:  # set meanwhile by another lookup
                return namespace[name]
            if not name.startswith("__"):
                for candidate in _candidates(name):
                    if candidate in self._star_modules:
                        found = _exported(self._submodule(candidate), name)
                        if found is not _MISSING:
                            namespace[name] = found
                            return found
                if self._is_submodule(name):
                    # Not namespace[name]: a submodule still executing (outputs.py imports
                    # itself) is bound to its parent only once it has finished.
                    return self._submodule(name)
            self._load_everything()
            if name in namespace:
                return namespace[name]
        raise AttributeError(f"module {self._module.__name__!r} has no attribute {name!r}")

    def _is_submodule(self, name: str) -> bool:
        return any(
            (Path(root) / f"{name}.py").is_file() or (Path(root) / name / "__init__.py").is_file()
            for root in self._module.__path__
        )

    def _submodule(self, name: str) -> ModuleType:
        module = importlib.import_module(f"{self._module.__name__}.{name}")
        if name in self._star_modules and name != "outputs":
            # Importing binds the package's `get_ami` to the module get_ami; the star-import
            # then rebinds it to the function get_ami. Do the same.
            found = _exported(module, name)
            if found is not _MISSING:
                self._module.__dict__[name] = found
        return module

    def _load_everything(self) -> None:
        """What the package's __init__ would have done: every star-import, in order."""
        if self._eager:
            return
        self._eager = True
        namespace = self._module.__dict__
        for name in self._star_modules:
            submodule = self._submodule(name)
            if name == "outputs":
                continue  # `from . import outputs`: the import alone was the point
            public = getattr(submodule, "__all__", None)
            if public is None:
                public = [n for n in vars(submodule) if not n.startswith("_")]
            for exported in public:
                namespace[exported] = getattr(submodule, exported)


class _Missing:
    pass


_MISSING = _Missing()


def _exported(module: ModuleType, name: str) -> Any:
    public = getattr(module, "__all__", None)
    if public is not None and name not in public:
        return _MISSING
    return getattr(module, name, _MISSING)


def install() -> None:
    """Slim the provider packages for the rest of this process; a no-op once they are loaded
    (an eager import that already happened stays as it is)."""
    with _LOCK:
        if any(isinstance(f, Finder) for f in sys.meta_path):
            return
        sys.meta_path.insert(0, Finder())
