"""The documentation is tested: its code samples run, its printed output is true, its reference
covers the public API, and the site builds with `mkdocs build --strict`.

Code samples: every ```` ```python ```` block of a page under `docs/` runs, in page order, in one
namespace per page (like a notebook). A ```` ```text ```` block that directly follows a python
block is that block's expected standard output; it must match (trailing spaces ignored, `...`
matches anything, as in doctest's `ELLIPSIS`). An HTML comment on the line just above a fence
changes how it is treated:

- `<!-- skip: REASON -->`: the block is shown but not run (only where it truly cannot run here,
  such as a multi-host launch).
- `<!-- file: NAME -->`: the block is written to the file `NAME` (in the page's own temporary
  directory, where its python blocks also run) instead of being run.
- `<!-- shell -->` (or `<!-- shell: exit N -->`): each line of the block is a shell command, run
  in that directory with this environment's tools first on `PATH` (`pytest`, `funcgraph`); each
  must exit with 0 (or N). A ```` ```text ```` block right after it is the expected output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import doctest
import importlib.util
import io
import linecache
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import jax
import pytest

# `funcgraph.node` is also the name of the decorator, so fetch the module itself.
fg_node = importlib.import_module("funcgraph.node")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"

_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip|file|shell)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")


@dataclasses.dataclass
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    marker: tuple[str, str] | None = None  # (kind, argument) of an HTML comment just above
    expected: str | None = None  # the ```text block directly after a python block


def parse_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, with their markers and expected outputs."""
    lines = text.splitlines()
    blocks: list[Block] = []
    last_end = -10  # line index of the closing fence of the previous block
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m["indent"], m["fence"], m["lang"].lower()
        j = i + 1
        while j < len(lines) and not (
            lines[j].startswith(indent + fence) and lines[j].strip() == fence
        ):
            j += 1
        if j == len(lines):
            raise ValueError(f"line {i + 1}: code fence is never closed")
        body = textwrap.dedent("\n".join(line[len(indent) :] for line in lines[i + 1 : j]))
        marker = None
        if i > 0 and (mm := _MARKER.match(lines[i - 1])):
            marker = (mm["kind"], mm["arg"] or "")
        gap = lines[last_end + 1 : i] if last_end >= 0 else ["x"]
        follows_code = (
            blocks
            and (blocks[-1].lang == "python" or blocks[-1].marker is not None)
            and all(not s.strip() for s in gap)
        )
        if lang == "text" and follows_code and marker is None:
            blocks[-1].expected = body
        else:
            blocks.append(Block(lang, body, i + 1, marker))
        last_end = j
        i = j + 1
    return blocks


def _pages() -> list[Path]:
    return sorted(
        p for p in DOCS.rglob("*.md") if re.search(r"```python|<!-- shell", p.read_text())
    )


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


_CHECKER = doctest.OutputChecker()


@pytest.fixture
def clean_registry() -> Any:
    # Pages define nodes (a deliberately wrong one among them); they must not leak into the
    # registry that other tests (and the pytest plugin) enumerate.
    saved = dict(fg_node._REGISTRY)
    yield
    fg_node._REGISTRY.clear()
    fg_node._REGISTRY.update(saved)


def _run_shell(directory: Path, block: Block, expected_code: int, where: str) -> None:
    """Run a shell block's commands in `directory`, as a user would in a terminal there."""
    env = {
        **os.environ,
        # The tools of this interpreter's environment (pytest, funcgraph) come first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(directory),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    output = []
    code = 0
    for command in block.code.splitlines():
        if not command.strip() or command.lstrip().startswith("#"):
            continue
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output.append(result.stdout + result.stderr)
        code = result.returncode
        if code != expected_code:
            break
    printed = "".join(output)
    assert code == expected_code, (
        f"{where}: `{command}` exited with {code}, expected {expected_code}:\n{printed}"
    )
    if block.expected is not None:
        want, got = _normalize(block.expected), _normalize(printed)
        assert _CHECKER.check_output(want, got, doctest.ELLIPSIS), (
            f"{where}: output differs from the page's text block\n"
            f"--- page ---\n{want}--- printed ---\n{got}"
        )


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_code_samples_run(
    page: Path, tmp_path: Path, clean_registry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = page.relative_to(DOCS)
    module_name = "docs." + ".".join(rel.with_suffix("").parts).replace("-", "_")
    # A real module object, so that libraries which look classes up by their module (Flax's
    # dataclass transform, pickling, inspect) find the page's definitions.
    module = types.ModuleType(module_name)
    monkeypatch.setitem(sys.modules, module_name, module)
    namespace = module.__dict__
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    ran = 0
    for block in parse_blocks(page.read_text()):
        where = f"docs/{rel}:{block.line}"
        kind, arg = block.marker or ("", "")
        if kind == "skip":
            assert arg, f"{where}: say why a block is skipped: <!-- skip: REASON -->"
            continue
        if kind == "file":
            (tmp_path / arg).write_text(block.code + "\n")
            continue
        if kind == "shell":
            code = int(arg.removeprefix("exit").strip() or 0) if arg else 0
            _run_shell(tmp_path, block, code, where)
            ran += 1
            continue
        if block.lang != "python":
            continue
        filename = f"<{where}>"
        source = block.code + "\n"
        # Registered with linecache so tracebacks and inspect.getsource show the sample.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        out = io.StringIO()
        try:
            # Samples run as users run them: under JAX's default ("standard") dtype promotion,
            # not the strict promotion conftest.py sets for the library's own tests.
            with contextlib.redirect_stdout(out), jax.numpy_dtype_promotion("standard"):
                exec(compile(source, filename, "exec"), namespace)
        except Exception as err:
            raise AssertionError(
                f"{where}: code sample raised {type(err).__name__}: {err}\n"
                f"--- printed before the error ---\n{out.getvalue()}"
            ) from err
        ran += 1
        if block.expected is not None:
            want, got = _normalize(block.expected), _normalize(out.getvalue())
            assert _CHECKER.check_output(want, got, doctest.ELLIPSIS), (
                f"{where}: printed output differs from the page's text block\n"
                f"--- page ---\n{want}--- printed ---\n{got}"
            )
    assert ran, f"docs/{rel} has python blocks but none ran"


def test_parse_blocks_pairs_output_and_markers() -> None:
    page = textwrap.dedent(
        """\
        Some text.

        ```python
        print(1)
        ```

        ```text
        1
        ```

        <!-- skip: needs two hosts -->
        ```python
        launch()
        ```

        ```text
        shown after a skipped block, so not checked
        ```

        Text between blocks: the next text block is shown, not an output.

        ```text
        just text
        ```

        <!-- shell: exit 1 -->
        ```bash
        echo hi; exit 1
        ```

        ```text
        hi
        ```
        """
    )
    blocks = parse_blocks(page)
    assert [b.lang for b in blocks] == ["python", "python", "text", "bash"]
    assert blocks[0].expected == "1"
    assert blocks[1].marker == ("skip", "needs two hosts")
    assert blocks[1].expected is not None
    assert blocks[2].code == "just text"
    assert blocks[3].marker == ("shell", "exit 1")
    assert blocks[3].expected == "hi"


def test_a_wrong_printed_output_fails(tmp_path: Path) -> None:
    # The checker must be able to fail: a page claiming 2 for print(1) does not match.
    assert not _CHECKER.check_output(_normalize("2"), _normalize("1\n"), doctest.ELLIPSIS)
    assert _CHECKER.check_output(_normalize("a ... c"), _normalize("a b c\n"), doctest.ELLIPSIS)


def test_shell_blocks_check_exit_code_and_output(tmp_path: Path) -> None:
    block = parse_blocks("<!-- shell: exit 1 -->\n```bash\necho hi; exit 1\n```\n")[0]
    _run_shell(tmp_path, block, 1, "page")
    with pytest.raises(AssertionError, match="exited with 1, expected 0"):
        _run_shell(tmp_path, block, 0, "page")
    block.expected = "bye"
    with pytest.raises(AssertionError, match="output differs"):
        _run_shell(tmp_path, block, 1, "page")


# -- the API reference ----------------------------------------------------------------------


def _documented() -> set[str]:
    """Identifiers rendered by mkdocstrings directives (`::: funcgraph.x`) in the reference."""
    names: set[str] = set()
    for page in REFERENCE.rglob("*.md"):
        names |= set(re.findall(r"^:::\s*([\w.]+)", page.read_text(), flags=re.M))
    return names


def _resolve(path: str) -> Any:
    """The object a dotted path names: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, _MISSING)
        return obj
    return _MISSING


_MISSING = object()

# The namespaces users reach for: `fg.x`, `fg.nodes.x`, `fg.nn.x`, `fg.train.x`, ...
PUBLIC_MODULES = [
    "funcgraph",
    "funcgraph.nodes",
    "funcgraph.nn",
    "funcgraph.train",
    "funcgraph.checkpoint",
    "funcgraph.datasets",
    "funcgraph.strategies",
    "funcgraph.testing",
]


def test_every_directive_names_an_object() -> None:
    unresolved = sorted(p for p in _documented() if _resolve(p) is _MISSING)
    assert not unresolved, f"docs/reference/ documents names that do not exist: {unresolved}"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_reference_covers_every_public_name(module_name: str) -> None:
    if importlib.util.find_spec(module_name) is None:
        pytest.skip(f"{module_name} does not exist yet")
    module = importlib.import_module(module_name)
    documented = _documented()
    # A name counts as documented under its own path or under any path to the same object
    # (`funcgraph.Node` and `funcgraph.node.Node` are one class).
    objects = [_resolve(p) for p in documented]
    missing = [
        f"{module_name}.{name}"
        for name in module.__all__
        if f"{module_name}.{name}" not in documented
        and not any(o is getattr(module, name) for o in objects)
    ]
    assert not missing, f"public names missing from docs/reference/: {missing}"


# -- the site ---------------------------------------------------------------------------------


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    needed = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    absent = [m for m in needed if importlib.util.find_spec(m.split(".")[0]) is None]
    if absent or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip(f"docs toolchain not installed ({absent}); pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
