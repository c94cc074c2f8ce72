from __future__ import annotations

import os
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from funcgraph.checkpoint import load_checkpoint, save_checkpoint
from funcgraph.errors import CheckpointError


def _state(key: jax.Array) -> dict:
    k1, k2 = jax.random.split(key)
    params = {
        "w": jax.random.normal(k1, (3, 4), jnp.float32),
        "b": jnp.arange(4, dtype=jnp.bfloat16),
        "layers": [jnp.ones((2,), jnp.float16), jnp.zeros((), jnp.float32)],
    }
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3))
    return {
        "params": params,
        "opt_state": opt.init(params),
        "step": jnp.asarray(7, jnp.int32),
        "key": k2,
        "raw_key": jax.random.PRNGKey(3),
        "mask": np.array([True, False]),
    }


def _assert_same(a: object, b: object) -> None:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_roundtrip_restores_every_leaf_exactly(tmp_path: Path, key: jax.Array) -> None:
    state = _state(key)
    path = save_checkpoint(tmp_path / "run.ckpt", state)
    assert path == tmp_path / "run.ckpt"
    template = jax.tree_util.tree_map(
        lambda x: np.zeros_like(x) if isinstance(x, np.ndarray) else jnp.zeros_like(x), state
    )
    restored = load_checkpoint(path, like=template)
    _assert_same(restored, state)
    assert isinstance(restored["mask"], np.ndarray)
    assert jax.dtypes.issubdtype(restored["key"].dtype, jax.dtypes.prng_key)
    # A typed key restores to a key that draws the same numbers.
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (3,)), jax.random.normal(state["key"], (3,))
    )


def test_file_is_plain_npz_without_pickle(tmp_path: Path, key: jax.Array) -> None:
    path = save_checkpoint(tmp_path / "c.npz", _state(key))
    with np.load(path, allow_pickle=False) as z:
        assert "__meta__" in z.files
        assert all(z[name].dtype == np.uint8 for name in z.files)


def test_template_may_be_abstract_shapes(tmp_path: Path, key: jax.Array) -> None:
    state = {"w": jnp.ones((2, 3)), "step": jnp.asarray(1, jnp.int32)}
    save_checkpoint(tmp_path / "c", state)
    like = jax.eval_shape(lambda: state)
    _assert_same(load_checkpoint(tmp_path / "c", like=like), state)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: {**s, "extra": jnp.zeros(1)}, "arrays"),
        (lambda s: {**s, "step": jnp.zeros((2,), jnp.int32)}, r"\['step'\]: saved shape"),
        (lambda s: {**s, "step": jnp.asarray(0, jnp.float32)}, r"\['step'\]: saved dtype"),
        (lambda s: {**s, "params": (s["params"],)}, "structure|at"),
        (lambda s: {**s, "key": jax.random.PRNGKey(0)}, "key_impl|shape"),
    ],
)
def test_mismatched_template_is_refused(
    tmp_path: Path, key: jax.Array, change: object, message: str
) -> None:
    state = _state(key)
    save_checkpoint(tmp_path / "c", state)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(tmp_path / "c", like=change(state))  # type: ignore[operator]
    assert "nothing was loaded" in str(info.value)


def test_truncated_checkpoint_is_refused(tmp_path: Path, key: jax.Array) -> None:
    state = _state(key)
    path = save_checkpoint(tmp_path / "c", state)
    data = path.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"truncated|corrupted"):
            load_checkpoint(path, like=state)


def test_corrupted_payload_is_refused_by_checksum(tmp_path: Path, key: jax.Array) -> None:
    state = {"w": jnp.arange(16, dtype=jnp.float32)}
    path = tmp_path / "c"
    save_checkpoint(path, state)
    # Rewrite one member with different bytes but a valid zip CRC: only the checksum can tell.
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    blob = bytearray(members["leaf_000000.npy"])
    blob[-1] ^= 0xFF
    members["leaf_000000.npy"] = bytes(blob)
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(path, like=state)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a funcgraph checkpoint"):
        load_checkpoint(tmp_path / "other.npz", like={"a": np.zeros(3)})


def test_crash_mid_save_keeps_previous_checkpoint(
    tmp_path: Path, key: jax.Array, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = {"w": jnp.zeros(4)}
    path = save_checkpoint(tmp_path / "c", old)
    before = path.read_bytes()

    def crash(f: object, **members: object) -> None:
        f.write(b"PK\x03\x04 half an archive")  # type: ignore[attr-defined]
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": jnp.ones(4)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["c"]  # the temporary file was removed
    _assert_same(load_checkpoint(path, like=old), old)


def test_unstorable_leaf(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="str"):
        save_checkpoint(tmp_path / "c", {"name": "adam"})


def test_resume_from_saved_train_state_is_bit_identical(tmp_path: Path, key: jax.Array) -> None:
    from funcgraph.train import TrainState, make_step

    def loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((jnp.tanh(x @ params["w"]) - y) ** 2)

    kx, ky, kw = jax.random.split(key, 3)
    x, y = jax.random.normal(kx, (16, 3)), jax.random.normal(ky, (16, 2))
    opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, 0.1, 3, 10))
    step = make_step(loss, opt, mesh=None)
    params = {"w": jax.random.normal(kw, (3, 2))}
    with jax.numpy_dtype_promotion("standard"):
        start = TrainState(params, opt.init(params), jnp.asarray(0, jnp.int32), key)

    def run(state: TrainState, n: int) -> TrainState:
        p, s = state.params, state.opt_state
        for i in range(n):
            k = jax.random.fold_in(state.key, int(state.step) + i)
            noise = 0.01 * jax.random.normal(k, x.shape)  # uses the saved key
            p, s, _ = step(p, s, x + noise, y)
        return TrainState(p, s, state.step + n, state.key)

    uninterrupted = run(start, 8)
    save_checkpoint(tmp_path / "c", run(start, 3))
    template = jax.tree_util.tree_map(jnp.zeros_like, start)  # nothing of the run survives
    resumed = run(load_checkpoint(tmp_path / "c", like=template), 5)
    _assert_same(resumed, uninterrupted)
