"""Functional layers and models: each a pair of pure functions, `init` and `apply`.

In the style of stax and optax, a [`funcgraph.nn.Layer`][] is a named pair

- `init(key, input_shape) -> (output_shape, params)`: draws the parameters, a plain pytree of
  dicts and tuples, for inputs of `input_shape` (batch axis included; any batch size will do);
- `apply(params, x, *, key=None) -> y`: the forward, built from funcgraph nodes, so that its
  gradient runs their hand-written rules. `key` feeds dropout; without it dropout is off.

Layers compose with [`funcgraph.nn.sequential`][] and [`funcgraph.nn.residual`][], and plain
Python composition of `init`/`apply` always works too. Ready models: [`funcgraph.nn.mlp`][],
[`funcgraph.nn.cnn`][] / [`funcgraph.nn.lenet`][], and [`funcgraph.nn.transformer_block`][].

```python
model = fg.nn.mlp([64, 128, 10])
_, params = model.init(key, (1, 64))
logits = model.apply(params, x)
```
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from funcgraph import nodes
from funcgraph.errors import ShapeMismatchError

__all__ = [
    "Layer",
    "activation",
    "avg_pool2d",
    "cnn",
    "conv2d",
    "dense",
    "dropout",
    "embedding",
    "flatten",
    "gelu",
    "layer_norm",
    "lecun_normal",
    "lenet",
    "max_pool2d",
    "mlp",
    "multi_head_attention",
    "relu",
    "residual",
    "sequential",
    "sigmoid",
    "standard_normal",
    "tanh",
    "transformer_block",
]

Shape = tuple[int, ...]
Params = Any
Initializer = Callable[..., jax.Array]

# Random draws of one fixed size, so that initializing a model compiles a single random kernel
# instead of one per parameter shape (each costs a noticeable fraction of a second on a CPU).
_CHUNK = 1 << 14


@jax.jit
def _normal_chunk(key: jax.Array, index: jax.Array) -> jax.Array:
    return jax.random.normal(jax.random.fold_in(key, index), (_CHUNK,), jnp.float32)


def standard_normal(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    """Independent $N(0, 1)$ draws of any shape, made from fixed-size chunks.

    Deterministic in `key` and the same eagerly and under `jax.jit`; the numbers differ from
    `jax.random.normal(key, shape)`.
    """
    n = math.prod(shape)
    chunks = [_normal_chunk(key, jnp.uint32(i)) for i in range(max(1, -(-n // _CHUNK)))]
    flat = chunks[0] if len(chunks) == 1 else jnp.concatenate(chunks)
    return flat[:n].reshape(tuple(shape)).astype(dtype)


def lecun_normal() -> Initializer:
    r"""The LeCun normal initializer, $W \sim N(0, 1/\text{fan\_in})$, where fan-in is the
    product of all axes but the last (`(in, out)` dense kernels, `(h, w, in, out)` conv ones).

    **Returns:** `init(key, shape, dtype) -> array`, like a `jax.nn.initializers` function.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        fan_in = math.prod(shape[:-1]) if len(shape) > 1 else 1
        scale = jnp.asarray(1.0 / math.sqrt(max(fan_in, 1)), dtype)
        return standard_normal(key, shape, dtype) * scale

    return init


_LECUN_NORMAL = lecun_normal()


class Layer(NamedTuple):
    """A layer or model: a pair of pure functions.

    **Attributes:**

    - `init`: `init(key, input_shape) -> (output_shape, params)`.
    - `apply`: `apply(params, x, *, key=None) -> y`.
    """

    init: Callable[[jax.Array, Shape], tuple[Shape, Params]]
    apply: Callable[..., jax.Array]


def _output_shape(
    apply: Callable[..., jax.Array], params: Params, input_shape: Shape, dtype: Any
) -> Shape:
    out = jax.eval_shape(apply, params, jax.ShapeDtypeStruct(tuple(input_shape), dtype))
    return tuple(out.shape)


def _layer(
    make_params: Callable[[jax.Array, Shape], Params],
    apply: Callable[..., jax.Array],
    *,
    dtype: Any = jnp.float32,
) -> Layer:
    """A layer whose output shape is read off its own `apply` (no shape arithmetic to get
    wrong)."""

    def init(key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        input_shape = tuple(input_shape)
        params = make_params(key, input_shape)
        return _output_shape(apply, params, input_shape, dtype), params

    return Layer(init, apply)


def _last_dim(layer: str, input_shape: Shape) -> int:
    if len(input_shape) < 1:
        raise ShapeMismatchError(f"nn.{layer}: input_shape {input_shape} has no feature axis")
    return int(input_shape[-1])


# -- basic layers ----------------------------------------------------------------------------


def dense(
    out_dim: int,
    *,
    w_init: Initializer = _LECUN_NORMAL,
    b_init: Initializer = jax.nn.initializers.zeros,
    dtype: Any = jnp.float32,
) -> Layer:
    r"""Fully connected layer $y = x W + b$ on the last axis (node `dense`).

    **Arguments:**

    - `out_dim`: the output width.
    - `w_init`, `b_init`: `jax.nn.initializers` for $W$ `(in, out)` and $b$ `(out,)`.
    - `dtype`: the parameters' dtype.

    **Returns:** a [`funcgraph.nn.Layer`][] with params `{"w", "b"}`.
    """

    def make(key: jax.Array, input_shape: Shape) -> Params:
        kw, kb = jax.random.split(key)
        in_dim = _last_dim("dense", input_shape)
        return {"w": w_init(kw, (in_dim, out_dim), dtype), "b": b_init(kb, (out_dim,), dtype)}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return nodes.dense(x, params["w"], params["b"])

    return _layer(make, apply, dtype=dtype)


def conv2d(
    out_channels: int,
    kernel: int | tuple[int, int] = 3,
    *,
    stride: int = 1,
    padding: str = "SAME",
    w_init: Initializer = _LECUN_NORMAL,
    b_init: Initializer = jax.nn.initializers.zeros,
    dtype: Any = jnp.float32,
) -> Layer:
    r"""2-D convolution on NHWC inputs with an HWIO kernel (node `conv2d`).

    **Arguments:**

    - `out_channels`: output channels.
    - `kernel`: the kernel's height and width (one int for a square kernel).
    - `stride`, `padding`: as for the node (`"SAME"` or `"VALID"`).
    - `w_init`, `b_init`, `dtype`: as for [`funcgraph.nn.dense`][].

    **Returns:** a [`funcgraph.nn.Layer`][] with params `{"w", "b"}`.
    """
    kh, kw_ = (kernel, kernel) if isinstance(kernel, int) else kernel

    def make(key: jax.Array, input_shape: Shape) -> Params:
        if len(input_shape) != 4:
            raise ShapeMismatchError(
                f"nn.conv2d: input_shape {input_shape}, expected (batch, height, width, "
                "channels) (NHWC)"
            )
        k1, k2 = jax.random.split(key)
        w = w_init(k1, (kh, kw_, int(input_shape[-1]), out_channels), dtype)
        return {"w": w, "b": b_init(k2, (out_channels,), dtype)}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return nodes.conv2d(x, params["w"], params["b"], stride=stride, padding=padding)

    return _layer(make, apply, dtype=dtype)


def activation(fn: Callable[..., jax.Array], **static: Any) -> Layer:
    """A parameterless layer applying `fn(x, **static)` (a node, or any function of nodes)."""

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return fn(x, **static)

    return _layer(lambda key, shape: (), apply)


def relu() -> Layer:
    """The `relu` node as a layer."""
    return activation(nodes.relu)


def gelu(*, approximate: bool = True) -> Layer:
    """The `gelu` node as a layer."""
    return activation(nodes.gelu, approximate=approximate)


def tanh() -> Layer:
    """The `tanh` node as a layer."""
    return activation(nodes.tanh)


def sigmoid() -> Layer:
    """The `sigmoid` node as a layer."""
    return activation(nodes.sigmoid)


def max_pool2d(window: int = 2, stride: int = 2) -> Layer:
    """The `max_pool2d` node (NHWC) as a layer."""
    return activation(nodes.max_pool2d, window=window, stride=stride)


def avg_pool2d(window: int = 2, stride: int = 2) -> Layer:
    """The `avg_pool2d` node (NHWC) as a layer."""
    return activation(nodes.avg_pool2d, window=window, stride=stride)


def flatten() -> Layer:
    """Flatten every axis but the first (batch) one: `(B, ...)` to `(B, prod(...))`."""

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return nodes.reshape(x, shape=(x.shape[0], math.prod(x.shape[1:])))

    return _layer(lambda key, shape: (), apply)


def layer_norm(*, eps: float = 1e-5, dtype: Any = jnp.float32) -> Layer:
    r"""Layer normalization over the last axis (node `layer_norm`); params `{"gamma", "beta"}`
    start at ones and zeros."""

    def make(key: jax.Array, input_shape: Shape) -> Params:
        d = _last_dim("layer_norm", input_shape)
        return {"gamma": jnp.ones((d,), dtype), "beta": jnp.zeros((d,), dtype)}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return nodes.layer_norm(x, params["gamma"], params["beta"], eps=eps)

    return _layer(make, apply, dtype=dtype)


def dropout(rate: float) -> Layer:
    """Inverted dropout (node `dropout`) when `apply` gets a `key`; the identity without one."""

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        if key is None or rate == 0.0:
            return x
        return nodes.dropout(x, key, rate=rate)

    return _layer(lambda key, shape: (), apply)


def embedding(vocab_size: int, dim: int, *, dtype: Any = jnp.float32) -> Layer:
    """Token embedding (node `embedding`): integer ids of any shape to vectors of width `dim`;
    params `{"table"}` of shape `(vocab_size, dim)`, drawn from $N(0, 1)$."""

    def make(key: jax.Array, input_shape: Shape) -> Params:
        return {"table": standard_normal(key, (vocab_size, dim), dtype)}

    def apply(params: Params, ids: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        return nodes.embedding(params["table"], ids)

    return _layer(make, apply, dtype=jnp.int32)


# -- composition -----------------------------------------------------------------------------


def _takes_key(apply: Callable[..., Any]) -> bool:
    try:
        ps = inspect.signature(apply).parameters
    except (TypeError, ValueError):
        return False
    return "key" in ps or any(p.kind == p.VAR_KEYWORD for p in ps.values())


def sequential(*layers: Layer) -> Layer:
    """Chain layers: each one's output is the next one's input.

    **Arguments:** the layers, in order.

    **Returns:** a [`funcgraph.nn.Layer`][] whose params are a tuple with one entry per layer
    (`()` for layers without parameters). Its `apply` splits `key` between the layers that take
    one.
    """
    takes_key = [_takes_key(layer.apply) for layer in layers]

    def init(key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        params = []
        shape = tuple(input_shape)
        for k, layer in zip(jax.random.split(key, len(layers)), layers, strict=True):
            shape, p = layer.init(k, shape)
            params.append(p)
        return shape, tuple(params)

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        if len(params) != len(layers):
            raise ShapeMismatchError(
                f"nn.sequential: got params for {len(params)} layers, the model has {len(layers)}"
            )
        keys = [None] * len(layers) if key is None else list(jax.random.split(key, len(layers)))
        for layer, p, k, with_key in zip(layers, params, keys, takes_key, strict=True):
            x = layer.apply(p, x, key=k) if with_key else layer.apply(p, x)
        return x

    return Layer(init, apply)


def residual(layer: Layer) -> Layer:
    r"""A residual connection around `layer`: $y = x + f(x)$ (node `add`)."""

    def init(key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        shape, params = layer.init(key, input_shape)
        if tuple(shape) != tuple(input_shape):
            raise ShapeMismatchError(
                f"nn.residual: the inner layer maps {tuple(input_shape)} to {tuple(shape)}; a "
                "residual connection needs the same shape"
            )
        return shape, params

    takes_key = _takes_key(layer.apply)

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        y = layer.apply(params, x, key=key) if takes_key else layer.apply(params, x)
        return nodes.add(x, y)

    return Layer(init, apply)


# -- models ----------------------------------------------------------------------------------


def mlp(
    sizes: Sequence[int],
    *,
    activation_layer: Callable[[], Layer] = relu,
    dropout_rate: float = 0.0,
    dtype: Any = jnp.float32,
) -> Layer:
    """A multilayer perceptron: dense layers of the given widths with activations between them.

    **Arguments:**

    - `sizes`: `[in, hidden..., out]`, e.g. `[784, 512, 512, 10]`.
    - `activation_layer`: a layer factory for the hidden activations (default `relu`).
    - `dropout_rate`: dropout after each hidden activation (active only when `apply` gets a
      `key`).
    - `dtype`: the parameters' dtype.

    **Returns:** a [`funcgraph.nn.Layer`][]; `init(key)` defaults `input_shape` to
    `(1, sizes[0])`.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"nn.mlp: sizes={sizes} needs at least an input and an output width")
    layers: list[Layer] = []
    for i, width in enumerate(sizes[1:]):
        layers.append(dense(width, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(activation_layer())
            if dropout_rate:
                layers.append(dropout(dropout_rate))
    body = sequential(*layers)

    def init(key: jax.Array, input_shape: Shape | None = None) -> tuple[Shape, Params]:
        shape = (1, sizes[0]) if input_shape is None else tuple(input_shape)
        if shape[-1] != sizes[0]:
            raise ShapeMismatchError(
                f"nn.mlp({sizes}): input_shape {shape} has {shape[-1]} features, "
                f"expected {sizes[0]}"
            )
        return body.init(key, shape)

    return Layer(init, body.apply)


def cnn(
    num_classes: int = 10,
    *,
    channels: Sequence[int] = (16, 32),
    kernel: int = 3,
    hidden: Sequence[int] = (64,),
    pool: str = "max",
    activation_layer: Callable[[], Layer] = relu,
    dropout_rate: float = 0.0,
    input_shape: Shape = (1, 8, 8, 1),
    dtype: Any = jnp.float32,
) -> Layer:
    """A small LeNet-like convolutional classifier for NHWC images.

    Each entry of `channels` is a `conv2d` (SAME padding) followed by the activation and a 2x2
    pooling; then the features are flattened and pass through dense layers of widths `hidden`
    (with activations) and a final dense layer to `num_classes` logits.

    **Arguments:**

    - `num_classes`: the number of output logits.
    - `channels`: output channels of each convolution stage.
    - `kernel`: the convolutions' kernel size.
    - `hidden`: widths of the hidden dense layers.
    - `pool`: `"max"` or `"avg"` pooling.
    - `activation_layer`: a layer factory for the activations (default `relu`).
    - `dropout_rate`: dropout before each dense layer (only when `apply` gets a `key`).
    - `input_shape`: the default `input_shape` of `init` (digits: `(1, 8, 8, 1)`).
    - `dtype`: the parameters' dtype.

    **Returns:** a [`funcgraph.nn.Layer`][].
    """
    if pool not in ("max", "avg"):
        raise ValueError(f"nn.cnn: pool={pool!r}, expected 'max' or 'avg'")
    pooling = max_pool2d if pool == "max" else avg_pool2d
    layers: list[Layer] = []
    for c in channels:
        layers += [conv2d(c, kernel, dtype=dtype), activation_layer(), pooling()]
    layers.append(flatten())
    for width in hidden:
        if dropout_rate:
            layers.append(dropout(dropout_rate))
        layers += [dense(width, dtype=dtype), activation_layer()]
    if dropout_rate:
        layers.append(dropout(dropout_rate))
    layers.append(dense(num_classes, dtype=dtype))
    body = sequential(*layers)
    default_shape = tuple(input_shape)

    def init(key: jax.Array, input_shape: Shape | None = None) -> tuple[Shape, Params]:
        return body.init(key, default_shape if input_shape is None else tuple(input_shape))

    return Layer(init, body.apply)


def lenet(
    num_classes: int = 10,
    *,
    input_shape: Shape = (1, 28, 28, 1),
    pool: str = "max",
    dtype: Any = jnp.float32,
) -> Layer:
    """LeNet-5 (LeCun et al. 1998) with ReLU: conv 5x5x6, pool, conv 5x5x16, pool, dense 120,
    dense 84, dense `num_classes`. For MNIST-sized `(28, 28, 1)` images by default.

    **Returns:** a [`funcgraph.nn.Layer`][] (see [`funcgraph.nn.cnn`][]).
    """
    return cnn(
        num_classes,
        channels=(6, 16),
        kernel=5,
        hidden=(120, 84),
        pool=pool,
        input_shape=input_shape,
        dtype=dtype,
    )


def multi_head_attention(
    dim: int,
    heads: int,
    *,
    causal: bool = False,
    dtype: Any = jnp.float32,
) -> Layer:
    r"""Multi-head self-attention on `(batch, seq, dim)` inputs.

    One fused `dense` projects to queries, keys and values; they are split into `heads` heads of
    width `dim / heads`, attend (node `attention`, optionally causal), and an output `dense`
    mixes the heads: $y = \operatorname{concat}_h(\operatorname{attn}(Q_h, K_h, V_h))\, W_o + b_o$.

    **Returns:** a [`funcgraph.nn.Layer`][] with params `{"qkv": {"w", "b"}, "out": {"w", "b"}}`.
    """
    if dim % heads:
        raise ValueError(f"nn.multi_head_attention: dim={dim} is not divisible by heads={heads}")
    head_dim = dim // heads
    qkv = dense(3 * dim, dtype=dtype)
    out = dense(dim, dtype=dtype)

    def init(key: jax.Array, input_shape: Shape) -> tuple[Shape, Params]:
        if len(input_shape) < 2 or input_shape[-1] != dim:
            raise ShapeMismatchError(
                f"nn.multi_head_attention(dim={dim}): input_shape {tuple(input_shape)}, "
                f"expected (..., seq, {dim})"
            )
        k1, k2 = jax.random.split(key)
        _, p_qkv = qkv.init(k1, input_shape)
        _, p_out = out.init(k2, input_shape)
        return tuple(input_shape), {"qkv": p_qkv, "out": p_out}

    def apply(params: Params, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        *lead, seq, _ = x.shape
        heads_shape = (*lead, seq, heads, head_dim)
        # (..., seq, heads, hd) -> (..., heads, seq, hd): attention runs over the last two axes.
        axes = (*range(len(lead)), len(lead) + 1, len(lead), len(lead) + 2)
        q, k, v = nodes.split(qkv.apply(params["qkv"], x), sections=3, axis=-1)
        q, k, v = (
            nodes.transpose(nodes.reshape(t, shape=heads_shape), axes=axes) for t in (q, k, v)
        )
        o = nodes.attention(q, k, v, causal=causal)
        o = nodes.reshape(nodes.transpose(o, axes=axes), shape=(*lead, seq, dim))
        return out.apply(params["out"], o)

    return Layer(init, apply)


def transformer_block(
    dim: int,
    heads: int,
    mlp_dim: int,
    *,
    causal: bool = False,
    dropout_rate: float = 0.0,
    dtype: Any = jnp.float32,
) -> Layer:
    r"""A pre-norm transformer block on `(batch, seq, dim)` inputs:

    $$h = x + \operatorname{MHA}(\operatorname{LN}_1(x)), \qquad
    y = h + W_2\, \operatorname{gelu}(W_1 \operatorname{LN}_2(h))$$

    **Arguments:**

    - `dim`: the model width.
    - `heads`: attention heads (must divide `dim`).
    - `mlp_dim`: the hidden width of the MLP.
    - `causal`: mask attention to earlier positions only.
    - `dropout_rate`: dropout on each branch's output (only when `apply` gets a `key`).
    - `dtype`: the parameters' dtype.

    **Returns:** a [`funcgraph.nn.Layer`][]; `init(key)` defaults `input_shape` to
    `(1, 1, dim)`.
    """
    attn_branch = sequential(
        layer_norm(dtype=dtype),
        multi_head_attention(dim, heads, causal=causal, dtype=dtype),
        dropout(dropout_rate),
    )
    mlp_branch = sequential(
        layer_norm(dtype=dtype),
        dense(mlp_dim, dtype=dtype),
        gelu(),
        dense(dim, dtype=dtype),
        dropout(dropout_rate),
    )
    body = sequential(residual(attn_branch), residual(mlp_branch))

    def init(key: jax.Array, input_shape: Shape | None = None) -> tuple[Shape, Params]:
        return body.init(key, (1, 1, dim) if input_shape is None else tuple(input_shape))

    return Layer(init, body.apply)
