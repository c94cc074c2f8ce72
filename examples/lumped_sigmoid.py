"""Lumping: the lecture's gate-by-gate sigmoid becomes one node, equal to the fused one.

σ(x) = 1 / (1 + exp(-x)) built from the library's gates is a diagram of four hand-written
nodes. `fg.lump` turns the whole diagram into a single node whose backward is the chain rule
through those gates; `fg.nodes.sigmoid` is the same function written as one node with the
shortcut dσ/dx = σ(1 - σ). Values and gradients agree.

Run: python examples/lumped_sigmoid.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import funcgraph as fg

N = fg.nodes


def sigmoid_from_gates(x):
    return N.reciprocal(N.add(1.0, N.exp(N.scale(x, c=-1.0))))


def main() -> None:
    x = jnp.array([-2.0, 0.0, 1.5])
    print("gate by gate:")
    print(fg.trace(sigmoid_from_gates, x))

    lumped = fg.lump(sigmoid_from_gates, name="sigmoid_lumped")

    def loss(f):
        return lambda x: jnp.sum(f(x) ** 2)

    print("\nlumped, inside a loss:")
    print(fg.trace(loss(lumped), x))

    value_lumped, grad_lumped = jax.value_and_grad(loss(lumped))(x)
    value_fused, grad_fused = jax.value_and_grad(loss(N.sigmoid))(x)
    print(f"\nloss  lumped {float(value_lumped):.6f}  fused {float(value_fused):.6f}")
    print(f"grad  lumped {[round(float(g), 6) for g in grad_lumped]}")
    print(f"      fused  {[round(float(g), 6) for g in grad_fused]}")
    same = bool(jnp.allclose(grad_lumped, grad_fused, rtol=1e-5, atol=1e-7))
    print(f"same gradients: {same}")


if __name__ == "__main__":
    main()
