r"""Train steps of the same networks: funcgraph's hand-written nodes against plain `jax.grad`.

Both sides go through the same `funcgraph.train.make_step` with the same optax optimizer, the
same parameters and the same batch; only the loss function differs: `funcgraph.nn` models and
`fg.nodes` losses (so `jax.value_and_grad` runs the hand-written rules) against the plain-`jnp`
models of `benchmarks.baselines` (so it runs JAX's own autodiff). Before any timing, both sides'
losses and gradients are compared: a ratio between two different computations means nothing.

Measured per network: the step's wall and CPU time (medians over interleaved repeats) and its
compiled temporary memory, `memory_analysis().temp_size_in_bytes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import baselines
from benchmarks.timing import interleaved, paired_ratio, ratio, temp_bytes
from funcgraph import nn, nodes
from funcgraph.datasets import load_digits
from funcgraph.train import make_step

__all__ = ["Network", "networks", "run"]


class Network(NamedTuple):
    """One network of the comparison.

    **Attributes:**

    - `name`, `description`: how the tables name and describe it.
    - `params`: the parameters, from the `funcgraph.nn` model's `init`.
    - `batch`: `(inputs, targets)`.
    - `funcgraph_loss`, `baseline_loss`: `loss(params, inputs, targets) -> scalar`.
    - `time_target`: the largest acceptable time ratio (funcgraph / baseline).
    - `memory_target`: the largest acceptable compiled-memory ratio, or `None` for no target.
    """

    name: str
    description: str
    params: Any
    batch: tuple[jax.Array, jax.Array]
    funcgraph_loss: Callable[..., jax.Array]
    baseline_loss: Callable[..., jax.Array]
    time_target: float
    memory_target: float | None


def _classifier(
    model: nn.Layer, apply: Callable[..., jax.Array]
) -> tuple[Callable[..., jax.Array], Callable[..., jax.Array]]:
    def funcgraph_loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return nodes.softmax_cross_entropy(model.apply(params, x), y)

    def baseline_loss(params: Any, x: jax.Array, y: jax.Array) -> jax.Array:
        return baselines.cross_entropy(apply(params, x), y)

    return funcgraph_loss, baseline_loss


def _mlp(key: jax.Array, sizes: list[int], batch: int) -> Network:
    kp, kx, ky = jax.random.split(key, 3)
    model = nn.mlp(sizes)
    _, params = model.init(kp, (batch, sizes[0]))
    x = jax.random.normal(kx, (batch, sizes[0]), jnp.float32)
    y = jax.random.randint(ky, (batch,), 0, sizes[-1], jnp.int32)
    ours, theirs = _classifier(model, baselines.mlp_apply)
    widths = "-".join(str(s) for s in sizes)
    return Network(
        f"MLP {widths}",
        f"ReLU MLP {widths}, batch {batch}, softmax cross-entropy",
        params,
        (x, y),
        ours,
        theirs,
        time_target=1.0,
        memory_target=None,
    )


def _lenet(key: jax.Array, batch: int) -> Network:
    images, labels = load_digits("train", layout="image")
    # The digits set has 1,437 training images; repeat it for batches larger than that.
    idx = np.arange(batch) % len(images)
    x, y = jnp.asarray(images[idx]), jnp.asarray(labels[idx])
    model = nn.lenet(input_shape=(batch, 8, 8, 1))
    _, params = model.init(key)
    ours, theirs = _classifier(model, baselines.lenet_apply)
    return Network(
        "LeNet 8×8 digits",
        f"LeNet-5 (conv 5×5×6, pool, conv 5×5×16, pool, dense 120-84-10) on 8×8 digits, "
        f"batch {batch}",
        params,
        (x, y),
        ours,
        theirs,
        time_target=1.0,
        memory_target=None,
    )


def _transformer(key: jax.Array, batch: int, seq: int, dim: int, heads: int) -> Network:
    kp, kx, kt = jax.random.split(key, 3)
    mlp_dim = 4 * dim
    model = nn.transformer_block(dim, heads, mlp_dim)
    _, params = model.init(kp, (batch, seq, dim))
    x = jax.random.normal(kx, (batch, seq, dim), jnp.float32)
    target = jax.random.normal(kt, (batch, seq, dim), jnp.float32)

    def funcgraph_loss(params: Any, x: jax.Array, t: jax.Array) -> jax.Array:
        return nodes.mse(model.apply(params, x), t)

    apply = functools.partial(baselines.transformer_block_apply, heads=heads)

    def baseline_loss(params: Any, x: jax.Array, t: jax.Array) -> jax.Array:
        return baselines.mse(apply(params, x), t)

    return Network(
        f"Transformer block s{seq} d{dim}",
        f"pre-norm transformer block, sequence {seq}, width {dim}, {heads} heads, MLP "
        f"{mlp_dim}, tanh-GELU, batch {batch}, MSE loss",
        params,
        (x, target),
        funcgraph_loss,
        baseline_loss,
        time_target=0.9,
        memory_target=0.7,
    )


def networks(*, quick: bool, key: jax.Array | None = None) -> list[Network]:
    """The networks of the issue: MLP 784-512-512-10 (batch 256), LeNet on 8×8 digits, a
    transformer block with sequence 256 and width 256; tiny versions when `quick`."""
    key = jax.random.key(0) if key is None else key
    k1, k2, k3 = jax.random.split(key, 3)
    if quick:
        return [
            _mlp(k1, [64, 32, 32, 10], 16),
            _lenet(k2, 16),
            _transformer(k3, batch=2, seq=16, dim=32, heads=2),
        ]
    return [
        _mlp(k1, [784, 512, 512, 10], 256),
        _lenet(k2, 256),
        _transformer(k3, batch=8, seq=256, dim=256, heads=4),
    ]


def _max_relative_difference(a: Any, b: Any) -> float:
    diffs = []
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        scale = float(jnp.max(jnp.abs(y))) or 1.0
        diffs.append(float(jnp.max(jnp.abs(x - y))) / scale)
    return max(diffs)


def run(
    nets: list[Network], *, repeats: int, min_repeat_s: float = 0.02
) -> list[dict[str, Any]]:
    """Measure every network's train step on both sides.

    **Arguments:**

    - `nets`: from [`networks`][].
    - `repeats`: interleaved timing repeats per network.
    - `min_repeat_s`: the shortest repeat (steps are called enough times to fill it).

    **Returns:** one row per network: times, compiled temporary memory, their ratios and
    targets, and how far apart the two sides' gradients are.
    """
    optimizer = optax.sgd(1e-2)
    rows = []
    for net in nets:
        x, y = net.batch
        opt_state = optimizer.init(net.params)
        args = (net.params, opt_state, x, y)
        # One compilation per side serves both the memory analysis and the timing.
        ours = make_step(net.funcgraph_loss, optimizer, mesh=None).jitted.lower(*args).compile()
        theirs = make_step(net.baseline_loss, optimizer, mesh=None).jitted.lower(*args).compile()
        loss_ours, grads_ours = jax.jit(jax.value_and_grad(net.funcgraph_loss))(net.params, x, y)
        loss_theirs, grads_theirs = jax.jit(jax.value_and_grad(net.baseline_loss))(
            net.params, x, y
        )
        grad_diff = _max_relative_difference(grads_ours, grads_theirs)
        mem_ours, mem_theirs = temp_bytes(ours), temp_bytes(theirs)
        t = interleaved(
            {
                "funcgraph": lambda f=ours, a=args: f(*a),
                "baseline": lambda f=theirs, a=args: f(*a),
            },
            repeats=repeats,
            min_repeat_s=min_repeat_s,
        )
        paired = paired_ratio(t["funcgraph"], t["baseline"])
        paired_cpu = paired_ratio(t["funcgraph"], t["baseline"], cpu=True)
        time_ratio = paired.median
        mem_ratio = ratio(mem_ours, mem_theirs)
        rows.append(
            {
                "network": net.name,
                "description": net.description,
                "funcgraph_s": t["funcgraph"].median,
                "baseline_s": t["baseline"].median,
                "time_ratio": time_ratio,
                "time_ratio_quartiles": [paired.low, paired.high],
                "time_target": net.time_target,
                "time_met": time_ratio <= net.time_target,
                "funcgraph_cpu_s": t["funcgraph"].cpu_median,
                "baseline_cpu_s": t["baseline"].cpu_median,
                "cpu_ratio": paired_cpu.median,
                "cpu_ratio_quartiles": [paired_cpu.low, paired_cpu.high],
                "cpu_met": paired_cpu.median <= net.time_target,
                "funcgraph_temp_bytes": mem_ours,
                "baseline_temp_bytes": mem_theirs,
                "memory_ratio": mem_ratio,
                "memory_target": net.memory_target,
                "memory_met": (
                    None
                    if net.memory_target is None
                    else mem_ratio is not None and mem_ratio <= net.memory_target
                ),
                "loss_difference": abs(float(loss_ours) - float(loss_theirs)),
                "gradient_max_relative_difference": grad_diff,
                "repeats": len(t["funcgraph"].samples),
                "inner": t["funcgraph"].inner,
            }
        )
    return rows
