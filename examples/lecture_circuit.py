"""The lecture's circuit, gate by gate: f(W) = (3·W0² + W3·W1) / ((1/W2)·8).

At W0=4, W1=W3=6, W2=2 the forward pass gives 21 and the backward pass gives
∂f/∂W = (6, 1.5, +10.5, 1.5).

The sign of ∂f/∂W2 is the one that is easy to get wrong. W2 reaches the output through
d = 1/W2 and then the division n / (8d): two minus signs, ∂(1/W2)/∂W2 = -1/W2² and
∂(n/y)/∂y = -n/y², multiply to a plus. A derivation by hand that drops the second sign gets
-10.5.

Run: python examples/lecture_circuit.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import funcgraph as fg

# Each gate knows only its forward and its local gradient; the graph does the chain rule.


@fg.node
def square(x):
    return x * x


@square.backward
def square_backward(x, out, g):
    return 2 * x * g


@fg.node
def scale(x, *, c):
    return c * x


@scale.backward
def scale_backward(x, out, g, *, c):
    return c * g


@fg.node
def mul(x, y):
    return x * y


@mul.backward
def mul_backward(x, y, out, g):
    return g * y, g * x  # the mul gate swaps its inputs


@fg.node
def add(x, y):
    return x + y


@add.backward
def add_backward(x, y, out, g):
    return g, g  # the add gate distributes the gradient unchanged


@fg.node(save="output")
def reciprocal(x):
    return 1 / x


@reciprocal.backward
def reciprocal_backward(x, out, g):
    return -g * out * out  # d(1/x)/dx = -1/x² = -out²


@fg.node
def div(x, y):
    return x / y


@div.backward
def div_backward(x, y, out, g):
    return g / y, -g * x / (y * y)  # the minus sign that hand derivations drop


W = tuple(jnp.float32(v) for v in (4.0, 6.0, 2.0, 6.0))


@fg.example(lambda key: W)
def circuit(w0, w1, w2, w3):
    numerator = add(scale(square(w0), c=3.0), mul(w3, w1))
    denominator = scale(reciprocal(w2), c=8.0)
    return div(numerator, denominator)


def main() -> None:
    graph = fg.trace(circuit, *W)
    values = graph.forward(*W)  # the forward pass: a value on every edge
    grads = graph.backward(*W)  # the backward pass: df/d(edge) on every edge

    print(f"f(W) = {float(graph(*W)):g}\n")
    print(f"{'edge':<22} {'value':>7} {'gradient':>9}")
    for i, edge in enumerate(graph.inputs):
        print(f"{f'W{i}':<22} {float(values[edge.id]):>7g} {float(grads[edge.id]):>+9g}")
    for app in graph.applications:
        (edge,) = app.outputs
        label = f"{app.name} ({app.kind})"
        print(f"{label:<22} {float(values[edge.id]):>7g} {float(grads[edge.id]):>+9g}")

    dw = graph.input_gradients(grads)
    print()
    for i, d in enumerate(dw):
        print(f"df/dW{i} = {float(d):+g}")
    oracle = jax.grad(fg.reference(circuit), argnums=(0, 1, 2, 3))(*W)
    agree = all(bool(jnp.allclose(a, b)) for a, b in zip(dw, oracle, strict=True))
    print(f"hand-written backward pass == jax.grad of the pure forward: {agree}")


if __name__ == "__main__":
    main()
