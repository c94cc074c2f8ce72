"""Training with optax: one jitted step, a fit loop, its history and a loss plot.

The step differentiates the loss through the hand-written rules (every node is a
`jax.custom_vjp`, so `jax.value_and_grad` runs them; `backward="graph"` runs the graph's own
backward interpreter instead) and applies any optax `GradientTransformation`, chains and
schedules included. When several devices exist, the same step shards the batch over a
`jax.sharding.Mesh` with the parameters replicated.

```python
step = fg.train.make_step(loss, optax.adam(1e-3))
params, opt_state, loss_value = step(params, opt_state, x, y)

state, history = fg.fit(loss, params, optax.adam(1e-3), (x, y), key=key, epochs=10,
                        eval_data=(x_test, y_test), metrics={"accuracy": fg.train.accuracy(apply)})
```
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from funcgraph.checkpoint import load_checkpoint, save_checkpoint
from funcgraph.errors import DataError, NonFiniteLossError

__all__ = [
    "History",
    "Step",
    "TrainState",
    "accuracy",
    "data_mesh",
    "evaluate",
    "fit",
    "make_step",
    "plot_loss",
    "validate_data",
]

LossFn = Callable[..., jax.Array]
MetricFn = Callable[..., jax.Array]
MeshArg = Mesh | Literal["auto"] | None
DATA_AXIS = "data"


class TrainState(NamedTuple):
    """Everything a run needs to continue bit-identically; what a checkpoint holds.

    **Attributes:**

    - `params`: the model parameters (a pytree).
    - `opt_state`: the optax optimizer state.
    - `step`: the number of optimizer steps taken, an `int32` scalar.
    - `key`: the run's PRNG key; epoch $e$ shuffles with `fold_in(key, e)`.
    """

    params: Any
    opt_state: Any
    step: jax.Array
    key: jax.Array


# -- the step --------------------------------------------------------------------------------


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A one-axis mesh (axis name `"data"`) over `devices` (default: all of them)."""
    devs = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devs), (DATA_AXIS,))


def _resolve_mesh(mesh: MeshArg) -> Mesh | None:
    if mesh == "auto":
        return data_mesh() if jax.device_count() > 1 else None
    if mesh is not None and not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, 'auto' or None, got {mesh!r}")
    return mesh


class Step:
    """A jitted training step: `step(params, opt_state, *batch, **kwargs)`.

    Returns `(params, opt_state, loss)`. Made by [`funcgraph.train.make_step`][].

    **Attributes:**

    - `mesh`: the device mesh the batch is sharded over, or `None` on one device.
    - `jitted`: the underlying `jax.jit` function, for lowering and inspection.
    """

    def __init__(
        self,
        loss_fn: LossFn,
        optimizer: optax.GradientTransformation,
        mesh: Mesh | None,
        backward: Literal["jax", "graph"],
    ) -> None:
        # Keywords travel as one positional pytree: fg.value_and_grad treats keywords as static.
        def loss_of(params: Any, batch: tuple[Any, ...], kwargs: dict[str, Any]) -> jax.Array:
            return loss_fn(params, *batch, **kwargs)

        loss_of.__name__ = getattr(loss_fn, "__name__", "loss")
        if backward == "jax":
            value_and_grad = jax.value_and_grad(loss_of)
        elif backward == "graph":
            from funcgraph.graph import value_and_grad as graph_value_and_grad

            value_and_grad = graph_value_and_grad(loss_of)
        else:
            raise ValueError(f"make_step: backward={backward!r}, expected 'jax' or 'graph'")

        # Transformations that need the loss (polyak_sgd, line searches, reduce_on_plateau)
        # get it as optax's extra arguments; the others ignore them.
        tx = optax.with_extra_args_support(optimizer)

        def step(params: Any, opt_state: Any, *batch: Any, **kwargs: Any) -> tuple[Any, ...]:
            loss, grads = value_and_grad(params, batch, kwargs)
            # optax mixes Python floats with int32 step counts (bias corrections, schedules),
            # which strict dtype promotion refuses; the model itself stays under the user's rule.
            with jax.numpy_dtype_promotion("standard"):
                updates, opt_state = tx.update(
                    grads,
                    opt_state,
                    params,
                    value=loss,
                    grad=grads,
                    value_fn=lambda p: loss_of(p, batch, kwargs),
                )
                params = optax.apply_updates(params, updates)
            return params, opt_state, loss

        step.__name__ = f"step_{getattr(loss_fn, '__name__', 'loss')}"
        self.mesh = mesh
        if mesh is None:
            self.jitted = jax.jit(step)
        else:
            self._replicated = NamedSharding(mesh, PartitionSpec())
            self._sharded = NamedSharding(mesh, PartitionSpec(mesh.axis_names))
            self.jitted = jax.jit(step, out_shardings=self._replicated)

    def place(self, params: Any, opt_state: Any, batch: Sequence[Any], kwargs: Any) -> Any:
        """Replicate params, optimizer state and keywords; shard the batch's leading axis.

        A batch array whose leading axis does not divide evenly over the mesh (or a scalar, or
        a PRNG key) is replicated instead: the step computes the same numbers either way.
        """
        if self.mesh is None:
            return params, opt_state, tuple(batch), kwargs
        n = self.mesh.size

        def sharding(b: Any) -> NamedSharding:
            divisible = jnp.ndim(b) >= 1 and jnp.shape(b)[0] % n == 0
            return self._sharded if divisible else self._replicated

        params, opt_state, kwargs = jax.device_put((params, opt_state, kwargs), self._replicated)
        batch = tuple(jax.device_put(b, jax.tree_util.tree_map(sharding, b)) for b in batch)
        return params, opt_state, batch, kwargs

    def __call__(self, params: Any, opt_state: Any, *batch: Any, **kwargs: Any) -> Any:
        params, opt_state, batch, kwargs = self.place(params, opt_state, batch, kwargs)
        return self.jitted(params, opt_state, *batch, **kwargs)


def make_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    *,
    mesh: MeshArg = "auto",
    backward: Literal["jax", "graph"] = "jax",
) -> Step:
    r"""Make one jitted training step: loss, hand-written gradients, optax update.

    $$\ell, g = \nabla_\theta\, \mathrm{loss}(\theta, \text{batch}), \qquad
    u, s' = \mathrm{optimizer.update}(g, s, \theta), \qquad \theta' = \theta + u$$

    **Arguments:**

    - `loss_fn`: `loss_fn(params, *batch, **kwargs) -> scalar`.
    - `optimizer`: any optax `GradientTransformation` (chains, schedules, `adamw`, ...). The
      loss reaches the ones that need it (`polyak_sgd`, line searches, `reduce_on_plateau`) as
      optax's extra arguments `value`, `grad` and `value_fn`.
    - `mesh`: `"auto"` (default) shards the batch over all devices when there are several;
      a `jax.sharding.Mesh` shards over that mesh's axes; `None` never shards.
    - `backward`: `"jax"` (default) lets `jax.value_and_grad` call each node's hand-written
      rule; `"graph"` runs [`funcgraph.value_and_grad`][], the graph's own backward pass.

    **Returns:** a [`funcgraph.train.Step`][]: `step(params, opt_state, *batch, **kwargs)`
    returns `(params, opt_state, loss)`.
    """
    return Step(loss_fn, optimizer, _resolve_mesh(mesh), backward)


# -- metrics ---------------------------------------------------------------------------------


def accuracy(apply: Callable[..., jax.Array]) -> MetricFn:
    """The classification accuracy metric of a model: the fraction of argmax hits.

    **Arguments:**

    - `apply`: `apply(params, x) -> logits` with classes on the last axis.

    **Returns:** `metric(params, x, labels) -> float32 scalar`.
    """

    def metric(params: Any, x: jax.Array, labels: jax.Array) -> jax.Array:
        hits = jnp.argmax(apply(params, x), axis=-1) == labels
        return jnp.mean(hits.astype(jnp.float32))

    return metric


def evaluate(
    fns: Mapping[str, MetricFn],
    params: Any,
    data: Sequence[Any],
    *,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Evaluate batch-mean metrics over a whole dataset, in batches, as exact dataset means.

    **Arguments:**

    - `fns`: name to `fn(params, *batch) -> scalar` (a mean over the batch).
    - `params`: the model parameters.
    - `data`: a tuple of arrays sharing their leading (example) axis.
    - `batch_size`: how many examples per call.

    **Returns:** name to the mean over all examples, as Python floats.
    """
    return _evaluate(_jit_metrics(fns), params, data, batch_size)


def _jit_metrics(fns: Mapping[str, MetricFn]) -> Callable[..., dict[str, jax.Array]]:
    fns = dict(fns)

    def metrics(params: Any, *batch: Any) -> dict[str, jax.Array]:
        return {name: fn(params, *batch) for name, fn in fns.items()}

    return jax.jit(metrics)


def _evaluate(
    jitted: Callable[..., dict[str, jax.Array]],
    params: Any,
    data: Sequence[Any],
    batch_size: int,
) -> dict[str, float]:
    n = len(data[0])
    totals: dict[str, float] = {}
    for start in range(0, n, batch_size):
        batch = tuple(a[start : start + batch_size] for a in data)
        size = len(batch[0])
        for name, v in jitted(params, *batch).items():
            totals[name] = totals.get(name, 0.0) + float(v) * size
    return {name: t / n for name, t in totals.items()}


# -- validation ------------------------------------------------------------------------------


def validate_data(
    data: Sequence[Any], *, num_classes: int | None = None, name: str = "data"
) -> tuple[np.ndarray, ...]:
    """Check a dataset before training on it and bring it to host memory.

    Every array must share the leading (example) axis. With `num_classes`, the last array is
    the labels: integers of shape `(n,)` in `0..num_classes-1`. Integer labels are always
    checked to be non-negative.

    **Arguments:**

    - `data`: a tuple `(inputs, labels)` (or any tuple of arrays).
    - `num_classes`: the number of classes, for classification labels.
    - `name`: what to call the dataset in errors (`"data"`, `"eval_data"`).

    **Returns:** the arrays as NumPy arrays.

    **Raises:** [`funcgraph.DataError`][] naming the array, its shape or dtype and what was
    expected.
    """
    if not isinstance(data, (tuple, list)) or not data:
        raise DataError(
            f"{name} must be a tuple of arrays such as (inputs, labels), got {type(data).__name__}"
        )
    arrays = tuple(np.asarray(a) for a in data)
    roles = ["inputs", "labels"] if len(arrays) == 2 else [f"array {i}" for i in range(len(data))]
    for role, a in zip(roles, arrays, strict=True):
        if a.ndim == 0:
            raise DataError(f"{name}: {role} is a scalar; expected a leading example axis")
    n = len(arrays[0])
    for role, a in zip(roles[1:], arrays[1:], strict=True):
        if len(a) != n:
            raise DataError(
                f"{name}: {roles[0]} have {n} examples (shape {arrays[0].shape}) but {role} "
                f"have {len(a)} (shape {a.shape}); the leading axes must match"
            )
    if n == 0:
        raise DataError(f"{name}: there are no examples")
    labels = arrays[-1]
    if num_classes is not None:
        if len(arrays) < 2:
            raise DataError(f"{name}: num_classes was given but there are no labels")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{name}: labels have dtype {labels.dtype}; expected integer class indices in "
                f"0..{num_classes - 1} (convert with labels.astype(np.int32))"
            )
        if labels.ndim != 1:
            raise DataError(
                f"{name}: labels have shape {labels.shape}; expected ({n},), one class index "
                "per example (not one-hot)"
            )
    if len(arrays) >= 2 and np.issubdtype(labels.dtype, np.integer):
        bad = (labels < 0) if num_classes is None else (labels < 0) | (labels >= num_classes)
        if bad.any():
            i = int(np.argmax(bad.reshape(-1)))
            expected = "non-negative" if num_classes is None else f"in 0..{num_classes - 1}"
            raise DataError(
                f"{name}: {int(bad.sum())} label(s) out of range, e.g. label "
                f"{labels.reshape(-1)[i]} at flat index {i}; expected class indices {expected}"
            )
    return arrays


# -- history and plot ------------------------------------------------------------------------


@dataclasses.dataclass
class History:
    """What a [`funcgraph.fit`][] run measured.

    **Attributes:**

    - `epochs`: the (0-based) epoch numbers run by this call.
    - `metrics`: per-epoch values: `"train_loss"` (the mean step loss over the epoch),
      `"train_<name>"` and `"eval_<name>"` for each metric, `"eval_loss"` with eval data.
    - `step_loss`: the loss of every step, for the loss curve.
    - `steps_per_epoch`: optimizer steps per epoch.
    - `first_step`: the global step the first entry of `step_loss` belongs to.
    - `seconds`: wall time of each epoch, evaluation included.
    """

    epochs: list[int] = dataclasses.field(default_factory=list)
    metrics: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    step_loss: list[float] = dataclasses.field(default_factory=list)
    steps_per_epoch: int = 0
    first_step: int = 0
    seconds: list[float] = dataclasses.field(default_factory=list)

    def __getitem__(self, name: str) -> list[float]:
        return self.metrics[name]

    def last(self) -> dict[str, float]:
        """The metrics of the last epoch."""
        return {k: v[-1] for k, v in self.metrics.items() if v}

    def plot(self, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
        """Save the loss curve to an image file; see [`funcgraph.train.plot_loss`][]."""
        return plot_loss({title or "run": self}, path)


def plot_loss(histories: Mapping[str, History], path: str | os.PathLike[str]) -> Path:
    """Save loss curves (per-step train loss, per-epoch eval loss) to an image file.

    Matplotlib is imported here, on first use, with the Agg canvas only: no window opens and
    no global backend is changed.

    **Arguments:**

    - `histories`: run name to [`funcgraph.train.History`][]; one panel per run.
    - `path`: the file to write (`.png`, `.svg`, `.pdf`, ...).

    **Returns:** the path written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the loss plot needs matplotlib: pip install 'funcgraph[demo]'") from e
    path = Path(path)
    fig = Figure(figsize=(5.0 * len(histories), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(histories), squeeze=False)[0]
    for ax, (name, h) in zip(axes, histories.items(), strict=True):
        spe = max(h.steps_per_epoch, 1)
        steps = h.first_step + np.arange(1, len(h.step_loss) + 1)
        ax.plot(steps / spe, h.step_loss, lw=0.8, alpha=0.6, label="train loss (step)")
        ends = np.asarray(h.epochs, dtype=np.float64) + 1
        if "train_loss" in h.metrics:
            ax.plot(ends, h.metrics["train_loss"], "o-", ms=3, label="train loss (epoch)")
        if "eval_loss" in h.metrics:
            ax.plot(ends, h.metrics["eval_loss"], "s-", ms=3, label="eval loss")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# -- the fit loop ----------------------------------------------------------------------------


def _accepts_key(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "key" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())


class _Progress:
    """A tqdm bar over all steps when tqdm is installed, else a line per epoch; or nothing."""

    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar: Any = None
        self.enabled = enabled
        self.desc = desc
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True, leave=True
        )

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if self.bar.n % 10 == 0:
                self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def epoch(self, epoch: int, epochs: int, metrics: Mapping[str, float]) -> None:
        shown = {k: f"{v:.4f}" for k, v in metrics.items()}
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=True)
        elif self.enabled:
            items = " ".join(f"{k}={v}" for k, v in shown.items())
            print(f"{self.desc} epoch {epoch + 1}/{epochs}: {items}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _non_finite_message(loss: float, step: int, epoch: int, batch: int, params: Any) -> str:
    where = f"fit: the loss is {loss} at step {step} (epoch {epoch}, batch {batch})"
    finite = all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree_util.tree_leaves(params))
    if finite:
        cause = (
            "the parameters were finite, so the forward pass overflowed on this batch. "
            "Find the node with fg.debug_nans(loss_fn, err.state.params, *err.batch)"
        )
    elif step == 0:
        cause = "the initial parameters are not finite"
    else:
        cause = (
            f"the parameters were already non-finite: the update of step {step - 1} (whose "
            "loss was finite) produced them, so look at the gradients or lower the learning rate"
        )
    return f"{where}; {cause}"


def fit(
    loss_fn: LossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    data: Sequence[Any],
    *,
    key: jax.Array,
    epochs: int = 10,
    batch_size: int = 32,
    eval_data: Sequence[Any] | None = None,
    metrics: Mapping[str, MetricFn] | None = None,
    train_metrics: bool = True,
    num_classes: int | None = None,
    drop_last: bool = True,
    progress: bool = True,
    desc: str = "fit",
    plot: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    state: TrainState | None = None,
    mesh: MeshArg = "auto",
    backward: Literal["jax", "graph"] = "jax",
    eval_batch_size: int = 1024,
) -> tuple[TrainState, History]:
    r"""Train with minibatches, shuffled by a PRNG key; return the final state and a history.

    Epoch $e$ shuffles with `fold_in(key, e)`, so the same key gives the same run, and a run
    resumed from a checkpoint continues bit-identically. If `loss_fn` takes a `key` keyword
    (dropout), each step gets its own key, derived from the run's key and the step number; the
    evaluation calls it without one (`key=None`: inference mode).

    **Arguments:**

    - `loss_fn`: `loss_fn(params, *batch) -> scalar`, a mean over the batch.
    - `params`: the initial parameters (ignored when `state` is given or a checkpoint resumes).
    - `optimizer`: any optax `GradientTransformation`.
    - `data`: the training set, a tuple such as `(inputs, labels)` sharing a leading axis.
    - `key`: the PRNG key of the run.
    - `epochs`: the total number of epochs; a resumed run continues up to it.
    - `batch_size`: examples per step. With several devices it must divide over them.
    - `eval_data`: a held-out set; gives `eval_loss` and `eval_<metric>` per epoch.
    - `metrics`: name to `metric(params, *batch) -> scalar`, e.g.
      `{"accuracy": fg.train.accuracy(apply)}`.
    - `train_metrics`: also evaluate `metrics` on the whole training set after each epoch.
    - `num_classes`: validate the labels (last array of `data`) as class indices below it.
    - `drop_last`: drop the last incomplete batch of each epoch (one compiled shape).
    - `progress`: show a progress bar (tqdm; a line per epoch without it).
    - `desc`: the progress bar's label.
    - `plot`: save the loss curve to this image file at the end.
    - `checkpoint`: a file to save the [`funcgraph.train.TrainState`][] to after every epoch
      (atomically); if it exists when `fit` starts, the run resumes from it.
    - `state`: continue from this state instead of `params` (its key replaces `key`).
    - `mesh`, `backward`: passed to [`funcgraph.train.make_step`][].
    - `eval_batch_size`: examples per evaluation call.

    **Returns:** `(state, history)`: the final [`funcgraph.train.TrainState`][] and the
    [`funcgraph.train.History`][] of the epochs this call ran.

    **Raises:** [`funcgraph.DataError`][] for unusable data; [`funcgraph.NonFiniteLossError`][]
    when the loss becomes NaN or infinite, naming the step (its `state` attribute holds the last
    finite state).
    """
    arrays = validate_data(data, num_classes=num_classes, name="data")
    eval_arrays = None
    if eval_data is not None:
        eval_arrays = validate_data(eval_data, num_classes=num_classes, name="eval_data")
        if len(eval_arrays) != len(arrays):
            raise DataError(
                f"eval_data has {len(eval_arrays)} arrays, data has {len(arrays)}; "
                "they must have the same layout"
            )
        for i, (a, b) in enumerate(zip(arrays, eval_arrays, strict=True)):
            if a.shape[1:] != b.shape[1:]:
                raise DataError(
                    f"eval_data array {i} has examples of shape {b.shape[1:]}, data has "
                    f"{a.shape[1:]}; they must match"
                )
    if batch_size < 1 or epochs < 0:
        raise ValueError(f"fit: batch_size={batch_size} and epochs={epochs} must be positive")
    n = len(arrays[0])
    if batch_size > n and drop_last:
        raise DataError(
            f"fit: batch_size={batch_size} is larger than the {n} training examples and "
            "drop_last=True would leave no batch; lower batch_size"
        )
    steps_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)

    train_loss = loss_fn
    if _accepts_key(loss_fn):
        # Each step's key is fold_in(epoch_key, i), computed inside the jitted step.
        def train_loss(params: Any, *batch: Any, epoch_key: jax.Array, index: Any) -> jax.Array:
            return loss_fn(params, *batch, key=jax.random.fold_in(epoch_key, index))

        train_loss.__name__ = getattr(loss_fn, "__name__", "loss")

    step_fn = make_step(train_loss, optimizer, mesh=mesh, backward=backward)
    if step_fn.mesh is not None and batch_size % step_fn.mesh.size:
        raise DataError(
            f"fit: batch_size={batch_size} does not divide over the {step_fn.mesh.size} "
            f"devices of the mesh; use a multiple of {step_fn.mesh.size}"
        )

    if state is None:
        with jax.numpy_dtype_promotion("standard"):
            opt_state = optimizer.init(params)
        state = TrainState(params, opt_state, jnp.asarray(0, jnp.int32), key)
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, like=state)
    start = int(state.step)
    if start % steps_per_epoch:
        raise ValueError(
            f"fit: the state is at step {start}, not at an epoch boundary of "
            f"{steps_per_epoch} steps per epoch (was batch_size changed?)"
        )
    first_epoch = start // steps_per_epoch

    train_eval = _jit_metrics(metrics) if metrics and train_metrics else None
    held_out_eval = _jit_metrics({"loss": loss_fn, **(metrics or {})})
    history = History(steps_per_epoch=steps_per_epoch, first_step=start)
    bar = _Progress(progress, epochs * steps_per_epoch, min(start, epochs * steps_per_epoch), desc)
    params, opt_state, run_key = state.params, state.opt_state, state.key
    global_step = start
    try:
        for epoch in range(first_epoch, epochs):
            t0 = time.perf_counter()
            epoch_key = jax.random.fold_in(run_key, epoch)
            perm = np.asarray(jax.random.permutation(epoch_key, n))
            losses = []
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                batch = tuple(a[idx] for a in arrays)
                kwargs = {}
                if train_loss is not loss_fn:
                    kwargs = {"epoch_key": epoch_key, "index": np.int32(i + 1)}
                new = step_fn(params, opt_state, *batch, **kwargs)
                loss = float(new[2])
                if not math.isfinite(loss):
                    err = NonFiniteLossError(
                        _non_finite_message(loss, global_step, epoch, i, params)
                    )
                    err.state = TrainState(  # type: ignore[attr-defined]
                        params, opt_state, jnp.asarray(global_step, jnp.int32), run_key
                    )
                    err.batch = batch  # type: ignore[attr-defined]
                    raise err
                params, opt_state = new[0], new[1]
                global_step += 1
                losses.append(loss)
                bar.step(loss)
            history.step_loss.extend(losses)
            results = {"train_loss": float(np.mean(losses))}
            if train_eval is not None:
                train_values = _evaluate(train_eval, params, arrays, eval_batch_size)
                results.update({f"train_{k}": v for k, v in train_values.items()})
            if eval_arrays is not None:
                values = _evaluate(held_out_eval, params, eval_arrays, eval_batch_size)
                results.update({f"eval_{k}": v for k, v in values.items()})
            history.epochs.append(epoch)
            history.seconds.append(time.perf_counter() - t0)
            for k, v in results.items():
                history.metrics.setdefault(k, []).append(v)
            state = TrainState(params, opt_state, jnp.asarray(global_step, jnp.int32), run_key)
            if checkpoint is not None:
                save_checkpoint(checkpoint, state)
            bar.epoch(epoch, epochs, results)
    finally:
        bar.close()
    if plot is not None and history.epochs:
        plot_loss({desc: history}, plot)
    return state, history
