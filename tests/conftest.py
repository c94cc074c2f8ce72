"""Shared test setup.

Strict dtype promotion (as in Equinox's suite) makes silent upcasts, such as a float32 gradient
quietly becoming float64, fail loudly.
"""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(0)


def _compile_fast(f, *args):
    """`jax.jit(f)` compiled for `args` with cheap LLVM settings: test programs are tiny and run
    once, so compile time is what counts (the XLA graph and its numerics are unchanged)."""
    options = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(f).lower(*args).compile(options)


def assert_vjp_matches_reference(fn, reference, args, *, seed=0, rtol=None, atol=None, jit=True):
    """Check a node's hand-written VJP (`jax.vjp(fn)`) against autodiff of its pure forward
    (`jax.vjp(reference)`): same output, same gradient for a random cotangent. Integer inputs
    (no gradient) are skipped. Tolerances default by dtype (float32 or float64). With `jit`
    (default) both run in one `jax.jit` (one compilation instead of many eager dispatches)."""
    import jax.numpy as jnp
    import numpy as np

    out_shape = jax.eval_shape(fn, *args)
    leaves = jax.tree_util.tree_leaves(out_shape)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    ct = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(out_shape),
        [jax.random.normal(k, o.shape, o.dtype) for k, o in zip(keys, leaves, strict=True)],
    )

    def both(*a):
        out, vjp = jax.vjp(fn, *a)
        out_ref, vjp_ref = jax.vjp(reference, *a)
        return (out, vjp(ct)), (out_ref, vjp_ref(ct))

    got, want = _compile_fast(both, *args)(*args) if jit else both(*args)
    wide = any(leaf.dtype == jnp.float64 for leaf in leaves)
    rtol = rtol if rtol is not None else (1e-9 if wide else 2e-4)
    atol = atol if atol is not None else (1e-11 if wide else 2e-5)
    got_leaves = jax.tree_util.tree_leaves(got)
    for a, b in zip(got_leaves, jax.tree_util.tree_leaves(want), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
        if a.dtype == jax.dtypes.float0:
            continue
        scale = float(np.max(np.abs(b), initial=1.0))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


def cast_floats(tree, dtype):
    """Cast the floating-point leaves of a pytree to `dtype` (integer leaves are kept)."""
    import jax.numpy as jnp

    def cast(x):
        return x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x

    return jax.tree_util.tree_map(cast, tree)


NODE_CHECK_MODES = ("float32", "float64", "vmap")


def node_cases(module):
    """`pytest.param(node, example_index)` for every example of every node of
    `funcgraph.nodes.<module>` (for parametrizing a node library test module)."""
    import funcgraph.nodes  # noqa: F401  (registers the library)
    from funcgraph.node import registry

    prefix = f"funcgraph.nodes.{module}."
    nodes = [n for name, n in registry().items() if name.startswith(prefix)]
    assert nodes, f"no nodes registered under {prefix}"
    return [
        pytest.param(n, i, id=f"{n.name}[{i}]")
        for n in nodes
        for i in range(len(n.examples(jax.random.key(0))))
    ]


def check_node_case(node, index, mode):
    """Check one node example in one `mode` of `NODE_CHECK_MODES`: the hand-written VJP against
    autodiff of the reference under `jax.jit` in float32 or float64, or under `jax.vmap` (two
    examples stacked). Pass `mode="eager"` to run the float32 check without `jax.jit`."""
    import functools

    import jax.numpy as jnp

    with jax.enable_x64(mode == "float64"):
        ex = node.examples(jax.random.key(0))[index]
        fn = functools.partial(node, **ex.static)
        ref = functools.partial(node.reference, **ex.static)
        if mode in ("float32", "float64"):
            args = cast_floats(ex.args, jnp.dtype(mode))
            assert_vjp_matches_reference(fn, ref, args)
        elif mode == "eager":
            assert_vjp_matches_reference(fn, ref, ex.args, jit=False)
        else:
            other = node.examples(jax.random.key(1))[index]
            stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), ex.args, other.args)
            assert_vjp_matches_reference(jax.vmap(fn), jax.vmap(ref), stacked)


def assert_grad_of_grad_matches_reference(fn, reference, args, *, argnums=0, seed=0):
    """Check second derivatives: differentiate a random projection of the hand-written gradient
    (`jax.grad` through the rule) and compare with the same for autodiff of the reference."""
    import jax.numpy as jnp
    import numpy as np

    out = jax.eval_shape(fn, *args)
    k1, k2 = jax.random.split(jax.random.key(seed))
    w_out = jax.random.normal(k1, out.shape, out.dtype)
    w_in = jax.random.normal(k2, jnp.shape(args[argnums]), jnp.result_type(args[argnums]))

    def second(f, *a):
        def inner(*a):
            return jnp.sum(f(*a) * w_out)

        def projected(*a):
            return jnp.sum(jax.grad(inner, argnums=argnums)(*a) * w_in)

        return jax.grad(projected, argnums=argnums)(*a)

    compiled = _compile_fast(lambda *a: (second(fn, *a), second(reference, *a)), *args)
    got, want = compiled(*args)
    wide = jnp.result_type(args[argnums]) == jnp.float64
    scale = float(np.max(np.abs(want), initial=1.0))
    np.testing.assert_allclose(
        got, want, rtol=1e-9 if wide else 5e-4, atol=(1e-11 if wide else 5e-5) * scale
    )
