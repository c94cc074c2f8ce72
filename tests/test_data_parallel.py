"""Data parallelism: the same step shards the batch over a device mesh and matches one device.

Several CPU devices only exist if XLA is told so before JAX starts, so the check runs in a
subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=4`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np, optax
    from jax.sharding import PartitionSpec as P
    from funcgraph import nn, nodes
    from funcgraph.train import fit, make_step

    jax.config.update("jax_numpy_dtype_promotion", "strict")
    assert jax.device_count() == 4, jax.devices()

    model = nn.mlp([12, 32, 5], dropout_rate=0.25)
    _, params = model.init(jax.random.key(0))

    def loss(params, x, y, key=None):
        return nodes.softmax_cross_entropy(model.apply(params, x, key=key), y)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype(np.float32)
    y = rng.integers(0, 5, size=64).astype(np.int32)
    opt = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))

    single = make_step(loss, opt, mesh=None)
    multi = make_step(loss, opt)  # "auto": all four devices
    assert single.mesh is None and multi.mesh is not None and multi.mesh.size == 4

    # The batch is split over the devices, the parameters are replicated.
    p_, s_, (xb, yb), kw = multi.place(params, opt.init(params), (x[:16], y[:16]),
                                       {"key": jax.random.key(1)})
    assert xb.sharding.spec == P("data") and yb.sharding.spec == P("data")
    assert {tuple(sh.data.shape) for sh in xb.addressable_shards} == {(4, 12)}
    assert all(l.sharding.is_fully_replicated for l in jax.tree_util.tree_leaves(p_))

    p1, s1 = params, opt.init(params)
    p4, s4 = params, opt.init(params)
    for i in range(4):
        sl = slice(16 * i, 16 * (i + 1))
        k = jax.random.fold_in(jax.random.key(2), i)
        p1, s1, l1 = single(p1, s1, x[sl], y[sl], key=k)
        p4, s4, l4 = multi(p4, s4, x[sl], y[sl], key=k)
        np.testing.assert_allclose(l1, l4, rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p4)):
        assert len(b.sharding.device_set) == 4 and b.sharding.is_fully_replicated
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # fit on four devices against fit on one.
    runs = [fit(loss, params, opt, (x, y), key=jax.random.key(3), epochs=2, batch_size=16,
                eval_data=(x, y), progress=False, mesh=m) for m in (None, "auto")]
    (st1, h1), (st4, h4) = runs
    np.testing.assert_allclose(h1.step_loss, h4.step_loss, rtol=1e-5)
    np.testing.assert_allclose(h1["eval_loss"], h4["eval_loss"], rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(st1.params), jax.tree_util.tree_leaves(st4.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # A batch size that does not divide over the devices is refused with a clear error.
    try:
        fit(loss, params, opt, (x, y), key=jax.random.key(3), batch_size=10, progress=False)
    except Exception as e:
        assert "does not divide over the 4 devices" in str(e), e
    else:
        raise AssertionError("batch_size=10 on 4 devices was accepted")
    print("DATA-PARALLEL-OK")
    """
)


def test_sharded_step_matches_one_device() -> None:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    ).strip()
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DATA-PARALLEL-OK" in result.stdout
