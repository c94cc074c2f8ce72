"""Checkpoints: save and restore any pytree of arrays (params, optimizer state, step, PRNG key).

The file is a plain `.npz` archive readable with `np.load(path, allow_pickle=False)`: one `uint8`
member per leaf (its raw little-endian bytes, so `bfloat16` and PRNG keys survive) and a JSON
header member `__meta__` with the tree structure, every leaf's path, shape and dtype, and a SHA-256
checksum over the header and the data. Nothing is ever unpickled.

Writes are atomic: the archive is written to a temporary file in the same directory, flushed and
`fsync`ed, then moved over the old file with `os.replace`, so a crash mid-save leaves the previous
checkpoint whole. Loads are all-or-nothing: the structure, every shape and dtype, and the checksum
are validated against a template (`like=`) before a single array is returned.

```python
fg.save_checkpoint("run.ckpt", state)
state = fg.load_checkpoint("run.ckpt", like=state)
```
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from funcgraph.errors import CheckpointError

__all__ = ["load_checkpoint", "save_checkpoint"]

_FORMAT = "funcgraph-checkpoint"
_VERSION = 1
_META = "__meta__"
_MAX_LISTED = 8


def _is_key(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _spec(leaf: Any) -> dict[str, Any]:
    """The shape, dtype and (for typed PRNG keys) implementation a leaf is stored with."""
    if _is_key(leaf):
        data = jax.eval_shape(jax.random.key_data, leaf)
        return {
            "shape": list(data.shape),
            "dtype": str(data.dtype),
            "key_impl": str(jax.random.key_impl(leaf)),
        }
    if isinstance(leaf, jax.ShapeDtypeStruct) or hasattr(leaf, "dtype"):
        return {"shape": list(leaf.shape), "dtype": str(np.dtype(leaf.dtype)), "key_impl": None}
    if isinstance(leaf, (bool, int, float, complex, np.generic)):
        a = np.asarray(leaf)
        return {"shape": list(a.shape), "dtype": str(a.dtype), "key_impl": None}
    raise CheckpointError(
        f"checkpoint: cannot store a leaf of type {type(leaf).__name__}; "
        "expected arrays, PRNG keys or numbers"
    )


def _host_bytes(leaf: Any) -> bytes:
    if _is_key(leaf):
        leaf = jax.random.key_data(leaf)
    a = np.asarray(leaf)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).tobytes()


def _digest(header: list[dict[str, Any]], treedef: str, blobs: list[bytes]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([header, treedef], sort_keys=True).encode())
    for b in blobs:
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike[str], state: Any) -> Path:
    """Save a pytree of arrays atomically.

    The previous file at `path`, if any, stays intact until the new one is complete on disk.

    **Arguments:**

    - `path`: the file to write (any name; no suffix is added).
    - `state`: a pytree of arrays, numbers and PRNG keys, e.g. a
      [`funcgraph.train.TrainState`][] holding params, optimizer state, step and key.

    **Returns:** the path written, as a `Path`.
    """
    path = Path(path)
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(state)
    header = []
    blobs = []
    for key_path, leaf in leaves_with_paths:
        spec = _spec(leaf)
        header.append({"path": jax.tree_util.keystr(key_path), **spec})
        blobs.append(_host_bytes(leaf))
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "treedef": str(treedef),
        "leaves": header,
        "sha256": _digest(header, str(treedef), blobs),
    }
    members = {_META: np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
    for i, b in enumerate(blobs):
        members[f"leaf_{i:06d}"] = np.frombuffer(b, dtype=np.uint8)

    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)
    return path


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk; POSIX only (Windows cannot open a directory).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[dict[str, Any], list[bytes]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if _META not in archive.files:
                raise CheckpointError(
                    f"checkpoint {path}: not a funcgraph checkpoint (no {_META} member)"
                )
            meta = json.loads(archive[_META].tobytes().decode())
            n = len(meta["leaves"])
            blobs = [archive[f"leaf_{i:06d}"].tobytes() for i in range(n)]
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"checkpoint {path}: unreadable, truncated or corrupted ({type(e).__name__}: {e}); "
            "nothing was loaded"
        ) from e
    if meta.get("format") != _FORMAT or meta.get("version") != _VERSION:
        raise CheckpointError(
            f"checkpoint {path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
            f"expected {_FORMAT!r} version {_VERSION}"
        )
    return meta, blobs


def _restore_leaf(template: Any, spec: dict[str, Any], blob: bytes) -> Any:
    data = np.frombuffer(blob, dtype=jnp.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
    if spec["key_impl"] is not None:
        return jax.random.wrap_key_data(jnp.asarray(data), impl=spec["key_impl"])
    if isinstance(template, jax.Array):
        # Keep the template's placement (e.g. replicated over a mesh).
        return jax.device_put(data, template.sharding)
    if isinstance(template, jax.ShapeDtypeStruct):
        return jnp.asarray(data)
    if isinstance(template, np.ndarray):
        return data
    if isinstance(template, np.generic):
        return data[()]
    return type(template)(data.item())


def load_checkpoint(path: str | os.PathLike[str], *, like: Any) -> Any:
    """Load a checkpoint into the structure of a template, validating everything first.

    The tree structure, every leaf's path, shape, dtype and PRNG-key implementation, the byte
    counts and the SHA-256 checksum are all checked before anything is returned; on any mismatch
    a [`funcgraph.CheckpointError`][] lists what differs and nothing is loaded.

    **Arguments:**

    - `path`: a file written by [`funcgraph.save_checkpoint`][].
    - `like`: a template pytree with the expected structure (arrays, numbers, PRNG keys or
      `jax.ShapeDtypeStruct`s). Restored JAX arrays keep the template leaves' shardings.

    **Returns:** a pytree like `like`, holding the saved values.
    """
    path = Path(path)
    meta, blobs = _read(path)
    saved = meta["leaves"]
    t_leaves_with_paths, t_treedef = jax.tree_util.tree_flatten_with_path(like)
    problems: list[str] = []
    if len(saved) != len(t_leaves_with_paths):
        problems.append(
            f"it holds {len(saved)} arrays, the template has {len(t_leaves_with_paths)}"
        )
    elif meta["treedef"] != str(t_treedef):
        problems.append(
            f"its tree structure differs from the template's:\n  saved:    {meta['treedef']}\n"
            f"  template: {t_treedef}"
        )
    for spec, (key_path, leaf), blob in zip(saved, t_leaves_with_paths, blobs, strict=False):
        where = jax.tree_util.keystr(key_path)
        want = _spec(leaf)
        if spec["path"] != where:
            problems.append(f"leaf {spec['path']!r} is at {where!r} in the template")
            continue
        for field in ("shape", "dtype", "key_impl"):
            if spec[field] != want[field]:
                problems.append(f"{where}: saved {field} {spec[field]}, template has {want[field]}")
        expected_bytes = (
            int(np.prod(spec["shape"], dtype=np.int64)) * jnp.dtype(spec["dtype"]).itemsize
        )
        if len(blob) != expected_bytes:
            problems.append(f"{where}: {len(blob)} bytes stored, {expected_bytes} expected")
    if not problems and _digest(saved, meta["treedef"], blobs) != meta["sha256"]:
        problems.append("the SHA-256 checksum does not match: the file is corrupted")
    if problems:
        listed = problems[:_MAX_LISTED]
        more = len(problems) - len(listed)
        raise CheckpointError(
            f"checkpoint {path} does not match the template (nothing was loaded):\n- "
            + "\n- ".join(listed)
            + (f"\n- ... and {more} more" if more else "")
        )
    restored = [
        _restore_leaf(leaf, spec, blob)
        for (_, leaf), spec, blob in zip(t_leaves_with_paths, saved, blobs, strict=True)
    ]
    return jax.tree_util.tree_unflatten(t_treedef, restored)
