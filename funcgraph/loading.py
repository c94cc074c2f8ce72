"""Loading a user's module or file by a `MODULE_OR_FILE[:NAME]` target, for the CLI.

Loading a target *imports and runs the user's code*, exactly as `python FILE` would; the CLI's
help says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["load_target"]


def _split(target: str) -> tuple[str, str | None]:
    # A Windows drive letter ("C:\\x.py") is not a NAME separator.
    head, sep, tail = target.rpartition(":")
    if not sep or (len(head) == 1 and head.isalpha()) or "/" in tail or "\\" in tail:
        return target, None
    return head, tail or None


def load_module(spec: str) -> ModuleType:
    """Import a module by dotted name, or execute a `.py` file as a fresh module."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {spec}")
        name = f"funcgraph_user_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path.resolve())
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"cannot load {spec} as a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        # Let the file import its siblings, as `python FILE` would.
        sys.path.insert(0, str(path.resolve().parent))
        try:
            module_spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(spec)


def load_target(target: str) -> tuple[ModuleType, Any | None]:
    """Resolve `MODULE_OR_FILE[:NAME]`.

    **Returns:** `(module, obj)` where `obj` is the named attribute (dotted names allowed), or
    `None` when no name was given.
    """
    spec, name = _split(target)
    module = load_module(spec)
    if name is None:
        return module, None
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"{spec} has no attribute {name!r}")
        obj = getattr(obj, part)
    return module, obj
