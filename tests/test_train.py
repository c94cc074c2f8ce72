from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import funcgraph as fg
from funcgraph.errors import DataError, NonFiniteLossError
from funcgraph.train import History, TrainState, accuracy, evaluate, fit, make_step


@fg.node(register=False)
def loud_identity(x):
    return x


@loud_identity.backward
def loud_identity_backward(x, out, g):
    # Deliberately not the derivative of the forward: shows which rule the step ran.
    return 2.0 * g


def _linear_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = x @ params["w"] + params["b"]
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def _apply(params: dict, x: jax.Array) -> jax.Array:
    return x @ params["w"] + params["b"]


def _blobs(key: jax.Array, n: int = 96, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    k1, k2 = jax.random.split(key)
    centers = 3.0 * jax.random.normal(k1, (classes, 2))
    y = np.arange(n, dtype=np.int32) % classes
    x = np.asarray(centers[y] + 0.5 * jax.random.normal(k2, (n, 2)), dtype=np.float32)
    return x, y


def _params(classes: int = 3) -> dict:
    return {"w": jnp.zeros((2, classes), jnp.float32), "b": jnp.zeros((classes,), jnp.float32)}


@pytest.mark.parametrize("backward", ["jax", "graph"])
def test_step_runs_the_hand_written_rule(backward: str) -> None:
    c = jnp.array([1.0, -2.0, 3.0], jnp.float32)

    def loss(w: jax.Array) -> jax.Array:
        return jnp.sum(loud_identity(w) * c)

    w = jnp.zeros(3, jnp.float32)
    opt = optax.sgd(1.0)
    step = make_step(loss, opt, mesh=None, backward=backward)  # type: ignore[arg-type]
    w1, _, value = step(w, opt.init(w))
    np.testing.assert_allclose(w1, -2.0 * c)  # the hand rule doubles the gradient
    assert float(value) == 0.0
    # Autodiff of the reference forward would have stepped by -c.
    np.testing.assert_allclose(w - jax.grad(fg.reference(loss))(w), -c)


@pytest.mark.parametrize(
    "optimizer",
    [
        optax.sgd(0.1, momentum=0.9),
        optax.adam(optax.exponential_decay(1e-2, 2, 0.5)),
        optax.chain(
            optax.clip_by_global_norm(0.5), optax.adamw(optax.cosine_decay_schedule(1e-2, 10))
        ),
        optax.lamb(1e-3),
    ],
    ids=["sgd-momentum", "adam-schedule", "chain-clip-adamw-cosine", "lamb"],
)
def test_step_matches_plain_optax(optimizer: optax.GradientTransformation, key: jax.Array) -> None:
    x, y = _blobs(key, n=12)
    step = make_step(_linear_loss, optimizer, mesh=None)
    p_ref = p = _params()
    s_ref = s = optimizer.init(p)
    for _ in range(3):
        p, s, loss = step(p, s, x, y)
        loss_ref, g = jax.value_and_grad(_linear_loss)(p_ref, x, y)
        with jax.numpy_dtype_promotion("standard"):  # optax is not strict-promotion clean
            u, s_ref = optimizer.update(g, s_ref, p_ref)
            p_ref = optax.apply_updates(p_ref, u)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), p, p_ref)


@pytest.mark.parametrize(
    "optimizer",
    [
        optax.polyak_sgd(max_learning_rate=1.0),
        optax.chain(optax.adam(1e-2), optax.contrib.reduce_on_plateau(patience=1)),
        optax.chain(
            optax.sgd(1.0), optax.scale_by_backtracking_linesearch(max_backtracking_steps=8)
        ),
    ],
    ids=["polyak-sgd", "reduce-on-plateau", "backtracking-linesearch"],
)
def test_step_feeds_the_loss_to_optimizers_that_need_it(
    optimizer: optax.GradientTransformation, key: jax.Array
) -> None:
    x, y = _blobs(key, n=12)
    step = make_step(_linear_loss, optimizer, mesh=None)
    p = _params()
    with jax.numpy_dtype_promotion("standard"):
        s = optimizer.init(p)
    losses = []
    for _ in range(4):
        p, s, loss = step(p, s, x, y)
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_fit_learns_and_reports_history(key: jax.Array, tmp_path: Path) -> None:
    x, y = _blobs(key)
    xt, yt = _blobs(jax.random.fold_in(key, 1))
    state, history = fit(
        _linear_loss,
        _params(),
        optax.adam(0.1),
        (x, y),
        key=key,
        epochs=5,
        batch_size=16,
        eval_data=(xt, yt),
        metrics={"accuracy": accuracy(_apply)},
        num_classes=3,
        progress=False,
        plot=tmp_path / "loss.png",
    )
    assert isinstance(state, TrainState) and int(state.step) == 5 * 6
    assert history.epochs == [0, 1, 2, 3, 4] and history.steps_per_epoch == 6
    assert set(history.metrics) == {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy"}
    assert len(history.step_loss) == 30 and len(history.seconds) == 5
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["eval_accuracy"][-1] >= 0.9
    # The history's eval metrics are the dataset means of the final parameters.
    final = evaluate({"loss": _linear_loss}, state.params, (xt, yt), batch_size=7)
    np.testing.assert_allclose(final["loss"], history["eval_loss"][-1], rtol=1e-5)
    np.testing.assert_allclose(history["train_loss"][1], np.mean(history.step_loss[6:12]))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fit_is_reproducible(key: jax.Array) -> None:
    x, y = _blobs(key)

    def run(k: jax.Array) -> tuple[TrainState, History]:
        return fit(_linear_loss, _params(), optax.sgd(0.3), (x, y), key=k, epochs=2, progress=False)

    (s1, h1), (s2, h2), (_, h3) = run(key), run(key), run(jax.random.fold_in(key, 7))
    assert h1.step_loss == h2.step_loss
    np.testing.assert_array_equal(s1.params["w"], s2.params["w"])
    assert h1.step_loss != h3.step_loss  # another key shuffles differently


def test_resume_from_checkpoint_is_bit_identical(key: jax.Array, tmp_path: Path) -> None:
    x, y = _blobs(key)
    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(0.1, 20))
    )
    kwargs = dict(key=key, batch_size=16, progress=False)
    full, full_history = fit(_linear_loss, _params(), opt, (x, y), epochs=4, **kwargs)

    ckpt = tmp_path / "run.ckpt"
    half, _ = fit(_linear_loss, _params(), opt, (x, y), epochs=2, checkpoint=ckpt, **kwargs)
    assert int(half.step) == 12
    # A fresh process knows only the checkpoint: start from other params and another key.
    resumed, resumed_history = fit(
        _linear_loss,
        jax.tree_util.tree_map(jnp.ones_like, _params()),
        opt,
        (x, y),
        epochs=4,
        checkpoint=ckpt,
        key=jax.random.key(123),
        batch_size=16,
        progress=False,
    )
    assert resumed_history.epochs == [2, 3] and resumed_history.first_step == 12
    assert resumed_history.step_loss == full_history.step_loss[12:]
    for a, b in zip(
        jax.tree_util.tree_leaves(resumed[:3]), jax.tree_util.tree_leaves(full[:3]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_loss_with_key_gets_a_fresh_key_per_step(key: jax.Array) -> None:
    x, y = _blobs(key, n=32)
    seen: list[np.ndarray] = []

    def noisy_loss(params: dict, x: jax.Array, y: jax.Array, key: jax.Array | None = None):
        if key is not None:
            jax.debug.callback(lambda k: seen.append(np.asarray(k)), jax.random.key_data(key))
            keep = jax.random.bernoulli(key, 0.5, x.shape)
            x = jnp.where(keep, x / 0.5, 0.0).astype(x.dtype)
        return _linear_loss(params, x, y)

    def run() -> fg.History:
        return fit(
            noisy_loss,
            _params(),
            optax.sgd(0.1),
            (x, y),
            key=key,
            epochs=2,
            batch_size=8,
            eval_data=(x, y),
            progress=False,
        )[1]

    h1 = run()
    jax.effects_barrier()
    assert len(seen) == 8 and len({k.tobytes() for k in seen}) == 8
    # Evaluation runs without a key (inference mode), so it is deterministic.
    h2 = run()
    assert h1.metrics == h2.metrics


@pytest.mark.parametrize(
    ("data", "num_classes", "message"),
    [
        ((np.zeros((5, 2), np.float32), np.zeros(4, np.int32)), 3, "5 examples.*have 4"),
        ((np.zeros((4, 2), np.float32), np.zeros(4, np.float32)), 3, "dtype float32"),
        ((np.zeros((4, 2), np.float32), np.array([0, 1, 3, 2], np.int32)), 3, "label 3"),
        ((np.zeros((4, 2), np.float32), np.array([0, -1, 1, 2], np.int32)), None, "label -1"),
        ((np.zeros((4, 2), np.float32), np.zeros((4, 3), np.int32)), 3, "one-hot"),
        ((np.zeros((0, 2), np.float32), np.zeros(0, np.int32)), 3, "no examples"),
        (np.zeros((4, 2), np.float32), None, "tuple"),
    ],
)
def test_bad_data_is_refused(data: object, num_classes: int | None, message: str, key) -> None:
    with pytest.raises(DataError, match=message):
        fit(
            _linear_loss,
            _params(),
            optax.sgd(0.1),
            data,
            key=key,
            num_classes=num_classes,
            batch_size=2,
            progress=False,
        )  # type: ignore[arg-type]


def test_bad_eval_data_and_batch_size_are_refused(key: jax.Array) -> None:
    x, y = _blobs(key, n=8)
    with pytest.raises(DataError, match="eval_data: labels have dtype float32"):
        fit(
            _linear_loss,
            _params(),
            optax.sgd(0.1),
            (x, y),
            key=key,
            num_classes=3,
            eval_data=(x, y.astype(np.float32)),
            progress=False,
        )
    with pytest.raises(DataError, match=r"shape \(3,\), data has \(2,\)"):
        fit(
            _linear_loss,
            _params(),
            optax.sgd(0.1),
            (x, y),
            key=key,
            eval_data=(np.zeros((8, 3), np.float32), y),
            progress=False,
        )
    with pytest.raises(DataError, match="batch_size=16 is larger than the 8"):
        fit(_linear_loss, _params(), optax.sgd(0.1), (x, y), key=key, batch_size=16, progress=False)


def test_non_finite_loss_names_the_step(key: jax.Array) -> None:
    x = np.full((8, 1), 10.0, np.float32)
    y = np.ones((8, 1), np.float32)

    def mse(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
        return jnp.mean((x * w - y) ** 2)

    # Gradient descent with a step far too large: w grows ~x100 per step until it overflows.
    with pytest.raises(NonFiniteLossError, match=r"at step (\d+) \(epoch \d+, batch 0\)") as info:
        fit(
            mse,
            jnp.ones((1,), jnp.float32),
            optax.sgd(1.0),
            (x, y),
            key=key,
            epochs=100,
            batch_size=8,
            progress=False,
        )
    err = info.value
    step = int(err.state.step)
    assert f"at step {step} " in str(err)
    # The oracle: replaying plain SGD, the first non-finite loss happens exactly there.
    w = jnp.ones((1,), jnp.float32)
    for i in range(step + 1):
        loss, g = jax.value_and_grad(mse)(w, x, y)
        assert bool(jnp.isfinite(loss)) == (i < step)
        w = w - g
    assert np.isfinite(err.state.params).all() == ("parameters were finite" in str(err))


def test_non_finite_initial_parameters(key: jax.Array) -> None:
    x, y = _blobs(key, n=8)
    bad = {"w": jnp.full((2, 3), jnp.nan, jnp.float32), "b": jnp.zeros(3, jnp.float32)}
    with pytest.raises(NonFiniteLossError, match=r"step 0.*initial parameters"):
        fit(_linear_loss, bad, optax.sgd(0.1), (x, y), key=key, batch_size=8, progress=False)


def test_progress_bar_can_be_shown_and_turned_off(
    key: jax.Array, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    x, y = _blobs(key, n=16)
    fit(
        _linear_loss,
        _params(),
        optax.sgd(0.1),
        (x, y),
        key=key,
        epochs=1,
        batch_size=8,
        desc="blobs",
        progress=True,
    )
    err = capsys.readouterr().err
    assert "blobs" in err and "2/2" in err
    fit(
        _linear_loss,
        _params(),
        optax.sgd(0.1),
        (x, y),
        key=key,
        epochs=1,
        batch_size=8,
        progress=False,
    )
    assert capsys.readouterr().err == ""
