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


def randn(seed, *shapes, dtype="float32"):
    """Normal test inputs from NumPy (eager `jax.random` compiles a kernel per new shape, which
    would dominate these tests' run time); one array per shape, a tuple when several."""
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(seed)
    out = tuple(jnp.asarray(rng.standard_normal(s).astype(dtype)) for s in shapes)
    return out[0] if len(out) == 1 else out


def assert_vjp_matches_reference(fn, reference, args, *, seed=0, rtol=None, atol=None, jit=True):
    """Check a node's hand-written VJP (`jax.vjp(fn)`) against autodiff of its pure forward
    (`jax.vjp(reference)`): same output, same gradient for a random cotangent. Integer inputs
    (no gradient) are skipped. Tolerances default by dtype (float32 or float64). With `jit`
    (default) both run in one `jax.jit` (one compilation instead of many eager dispatches)."""
    import jax.numpy as jnp
    import numpy as np

    out_shape = jax.eval_shape(fn, *args)
    leaves = jax.tree_util.tree_leaves(out_shape)
    ct = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(out_shape),
        [randn(seed + i, o.shape, dtype=o.dtype) for i, o in enumerate(leaves)],
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


def _host_map(f, *trees):
    """Map `f` over NumPy copies of array leaves (no eager JAX ops, so nothing compiles)."""
    import jax.numpy as jnp
    import numpy as np

    def leaf(*xs):
        if jnp.issubdtype(xs[0].dtype, jax.dtypes.prng_key):
            return f(*xs)
        return jnp.asarray(f(*(np.asarray(x) for x in xs)))

    return jax.tree_util.tree_map(leaf, *trees)


def cast_floats(tree, dtype):
    """Cast the floating-point leaves of a pytree to `dtype` (integer leaves are kept)."""
    import jax.numpy as jnp

    def cast(x):
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return _host_map(cast, tree)


NODE_CHECK_MODES = ("float32", "float64", "vmap")


def node_cases(module):
    """`pytest.param(node, example_index)` for every example of every node of
    `funcgraph.nodes.<module>` (for parametrizing a node library test module)."""
    import funcgraph.nodes  # noqa: F401  (registers the library)
    from funcgraph.node import registry

    prefix = f"funcgraph.nodes.{module}."
    nodes = [n for name, n in registry().items() if name.startswith(prefix)]
    assert nodes, f"no nodes registered under {prefix}"
    key = jax.random.key(0)
    return [
        pytest.param(n, i, id=f"{n.name}[{i}]") for n in nodes for i in range(len(n.examples(key)))
    ]


def check_node_case(node, index, mode):
    """Check one node example in one `mode` of `NODE_CHECK_MODES`: the hand-written VJP against
    autodiff of the reference under `jax.jit` in float32 or float64, or under `jax.vmap` (two
    examples stacked). Pass `mode="eager"` to run the float32 check without `jax.jit`."""
    import functools

    import jax.numpy as jnp
    import numpy as np

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
            stacked = _host_map(lambda a, b: np.stack([a, b]), ex.args, other.args)
            assert_vjp_matches_reference(jax.vmap(fn), jax.vmap(ref), stacked)


def assert_grad_of_grad_matches_reference(fn, reference, args, *, argnums=0, seed=0):
    """Check second derivatives: differentiate a random projection of the hand-written gradient
    (`jax.grad` through the rule) with respect to the inputs `argnums` (an int or a tuple) and
    compare with the same for autodiff of the reference."""
    import jax.numpy as jnp
    import numpy as np

    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    out = jax.eval_shape(fn, *args)
    w_out = randn(seed, out.shape, dtype=out.dtype)
    w_in = [
        randn(seed + 1 + i, jnp.shape(args[i]), dtype=jnp.result_type(args[i])) for i in nums
    ]

    def second(f, *a):
        def inner(*a):
            return jnp.sum(f(*a) * w_out)

        def projected(*a):
            grads = jax.grad(inner, argnums=nums)(*a)
            return sum(jnp.sum(g * w) for g, w in zip(grads, w_in, strict=True))

        return jax.grad(projected, argnums=nums)(*a)

    compiled = _compile_fast(lambda *a: (second(fn, *a), second(reference, *a)), *args)
    got, want = compiled(*args)
    for g, w, i in zip(got, want, nums, strict=True):
        wide = jnp.result_type(args[i]) == jnp.float64
        scale = float(np.max(np.abs(w), initial=1.0))
        np.testing.assert_allclose(
            g, w, rtol=1e-9 if wide else 5e-4, atol=(1e-11 if wide else 5e-5) * scale
        )
