"""funcgraph nodes inside an Equinox module.

A node is an ordinary JAX function (a `jax.custom_vjp` underneath), so it works wherever JAX
code does: here inside an `equinox.Module`, differentiated with `eqx.filter_grad`. The gradient
runs the nodes' hand-written rules; `fg.reference` swaps them for their pure forwards, giving
plain autodiff of the same model to compare against, and `fg.check` does that comparison.

Run: python examples/equinox_example.py   (needs `pip install equinox`)
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

import funcgraph as fg
from funcgraph import nodes


class Dense(eqx.Module):
    """A dense layer whose forward is the `dense` node."""

    weight: jax.Array
    bias: jax.Array

    def __init__(self, in_dim: int, out_dim: int, *, key: jax.Array) -> None:
        self.weight = jax.random.normal(key, (in_dim, out_dim)) / jnp.sqrt(float(in_dim))
        self.bias = jnp.zeros((out_dim,))

    def __call__(self, x: jax.Array) -> jax.Array:
        return nodes.dense(x, self.weight, self.bias)


class MLP(eqx.Module):
    """Two `Dense` modules with a `tanh` node between them and a `layer_norm` node before."""

    hidden: Dense
    out: Dense
    gamma: jax.Array
    beta: jax.Array

    def __init__(self, sizes: tuple[int, int, int], *, key: jax.Array) -> None:
        k1, k2 = jax.random.split(key)
        self.hidden = Dense(sizes[0], sizes[1], key=k1)
        self.out = Dense(sizes[1], sizes[2], key=k2)
        self.gamma = jnp.ones((sizes[0],))
        self.beta = jnp.zeros((sizes[0],))

    def __call__(self, x: jax.Array) -> jax.Array:
        x = nodes.layer_norm(x, self.gamma, self.beta)
        return self.out(nodes.tanh(self.hidden(x)))


def loss(model: MLP, x: jax.Array, labels: jax.Array) -> jax.Array:
    return nodes.softmax_cross_entropy(model(x), labels)


def main() -> None:
    kx, ky, km = jax.random.split(jax.random.key(0), 3)
    model = MLP((6, 16, 3), key=km)
    x = jax.random.normal(kx, (8, 6))
    labels = jax.random.randint(ky, (8,), 0, 3)

    grads = eqx.filter_grad(loss)(model, x, labels)  # the hand-written rules
    oracle = eqx.filter_grad(fg.reference(loss))(model, x, labels)  # plain autodiff
    diff = jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grads, oracle)
    print("max |hand-written - autodiff| per parameter:", jax.tree_util.tree_leaves(diff))

    # A few steps of gradient descent on the module, as with any Equinox model.
    step = eqx.filter_jit(
        lambda m: jax.tree_util.tree_map(
            lambda p, g: p - 0.5 * g, m, eqx.filter_grad(loss)(m, x, labels)
        )
    )
    print("loss before:", float(loss(model, x, labels)))
    for _ in range(20):
        model = step(model)
    print("loss after: ", float(loss(model, x, labels)))

    report = fg.check(lambda m: loss(m, x, labels), model, seeds=1)
    print(report.summary())


if __name__ == "__main__":
    main()
