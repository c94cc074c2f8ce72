"""A sigmoid neuron, f(w, x) = σ(w0·x0 + w1·x1 + w2), two ways.

Gate by gate (mul, add, exp, reciprocal) the backward pass multiplies many local gradients;
the fused sigmoid node uses the shortcut dσ/dz = σ(z)(1 - σ(z)) and saves only its output.
Both give the lecture's numbers: f = 0.73, ∂f/∂w = (-0.20, -0.39, 0.20), ∂f/∂x = (0.39, -0.59).

Run: python examples/sigmoid_neuron.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import funcgraph as fg


@fg.node
def mul(x, y):
    return x * y


@mul.backward
def mul_backward(x, y, out, g):
    return g * y, g * x


@fg.node
def add(x, y):
    return x + y


@add.backward
def add_backward(x, y, out, g):
    return g, g


@fg.node(save="output")
def exp(x):
    return jnp.exp(x)


@exp.backward
def exp_backward(x, out, g):
    return g * out


@fg.node(save="output")
def reciprocal(x):
    return 1 / x


@reciprocal.backward
def reciprocal_backward(x, out, g):
    return -g * out * out


@fg.node(save="output")
def sigmoid(z):
    r"""Fused sigmoid. Forward $\sigma(z) = 1/(1+e^{-z})$; backward $g\,\sigma(1-\sigma)$."""
    return 1 / (1 + jnp.exp(-z))


@sigmoid.backward
def sigmoid_backward(z, out, g):
    return g * out * (1 - out)


def pre_activation(w, x):
    return add(add(mul(w[0], x[0]), mul(w[1], x[1])), w[2])


def neuron_gates(w, x):
    z = pre_activation(w, x)
    return reciprocal(add(exp(mul(z, jnp.float32(-1.0))), jnp.float32(1.0)))


def neuron_fused(w, x):
    return sigmoid(pre_activation(w, x))


EXAMPLE = (jnp.array([2.0, -3.0, -3.0]), jnp.array([-1.0, -2.0]))
neuron_gates = fg.example(lambda key: EXAMPLE)(neuron_gates)
neuron_fused = fg.example(lambda key: EXAMPLE)(neuron_fused)


def main() -> None:
    w, x = EXAMPLE
    for name, f in [("gate by gate", neuron_gates), ("fused sigmoid", neuron_fused)]:
        graph = fg.trace(f, w, x)
        value, (dw, dx) = fg.value_and_grad(f, argnums=(0, 1))(w, x)
        print(f"{name:<14} ({len(graph.hand_applications)} hand-written gates)")
        print(f"  f     = {float(value):.2f}")
        print(f"  df/dw = {[round(float(v), 2) for v in dw]}")
        print(f"  df/dx = {[round(float(v), 2) for v in dx]}")
    same = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.allclose(a, b, atol=1e-6)),
        jax.grad(neuron_gates, argnums=(0, 1))(w, x),
        jax.grad(neuron_fused, argnums=(0, 1))(w, x),
    )
    print(f"same gradients both ways: {all(jax.tree_util.tree_leaves(same))}")


if __name__ == "__main__":
    main()
