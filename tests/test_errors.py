"""The error catalogue: one case per error funcgraph raises on purpose.

Each case triggers one mistake a researcher makes and asserts that the message is a sentence
about their own code: it names the node (or function), the input, and what was expected. A case
is a function that makes the mistake; `CASES` lists them with the error class and a pattern the
message must match, and one parametrized test runs them all.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import pickle
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import funcgraph as fg
from funcgraph.checkpoint import load_checkpoint, save_checkpoint
from funcgraph.errors import CheckpointError, DataError, NonFiniteLossError


@dataclasses.dataclass(frozen=True)
class Case:
    make_mistake: Callable[..., Any]  # no arguments, or a temporary directory
    error: type[BaseException]
    match: str


CASES: dict[str, Case] = {}


def case(
    error: type[BaseException], match: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a catalogue case; `match` is searched in the message (re.DOTALL)."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        assert fn.__name__ not in CASES
        CASES[fn.__name__] = Case(fn, error, match)
        return fn

    return register


# -- nodes shared by the cases -------------------------------------------------------------------


@fg.node(register=False)
def mul(x, y):
    return x * y


@mul.backward
def _mul_backward(x, y, out, g):
    return g * y, g * x


@fg.node(register=False)
def matmul(x, w):
    return x @ w


@matmul.backward
def _matmul_backward(x, w, out, g):
    return g @ w.T, x.T @ g


@fg.node(register=False)
def total(x, *, axis=None):
    return jnp.sum(x, axis=axis)


@total.backward
def _total_backward(x, out, g, *, axis=None):
    return jnp.broadcast_to(jnp.expand_dims(g, axis) if axis is not None else g, x.shape)


@fg.node(register=False)
def scale(x, *, c):
    return c * x


@scale.backward
def _scale_backward(x, out, g, *, c):
    return c * g


def bad_rule_node(rule: Callable[..., Any], name: str = "bad_node") -> fg.Node:
    """A two-input broadcasting product whose backward rule is `rule`."""

    def forward(x, y):
        return x * y

    forward.__name__ = name
    n = fg.node(forward, register=False)
    n.backward(rule)
    return n


X = jnp.ones((2, 3))
Y = jnp.ones((3,))


def grad_of(n: fg.Node, *args: Any) -> Any:
    return jax.grad(lambda *a: jnp.sum(n(*a)), argnums=tuple(range(len(args))))(*args)


# -- defining a node -----------------------------------------------------------------------------


@case(fg.NodeDefinitionError, r"fg\.node expects a function, got int")
def node_of_a_non_function():
    fg.node(3)


@case(fg.NodeDefinitionError, r"node 'f': save='everything' is not one of .*'all'.*function")
def node_with_an_unknown_save_option():
    fg.node(lambda x: x, name="f", save="everything", register=False)


@case(
    fg.NodeDefinitionError,
    r"node 'mul2': backward rule 'wrong' takes 3 positional argument\(s\), expected 4: "
    r"\(x, y, out, g\)",
)
def backward_rule_with_the_wrong_signature():
    @fg.node(register=False)
    def mul2(x, y):
        return x * y

    @mul2.backward
    def wrong(x, y, g):  # forgot `out`
        return g * y, g * x


@case(fg.NodeDefinitionError, r"node 'mul': @mul\.backward expects a function, got str")
def backward_of_a_non_function():
    mul.backward("g * y")


# -- calling a node ------------------------------------------------------------------------------


@case(fg.NodeInputError, r"node 'mul': input 0 \(x\) is None; expected an array")
def none_as_an_input():
    mul(None, Y)


@case(fg.NodeInputError, r"node 'mul': input 1 \(y\) contains a str; expected an array")
def string_as_an_input():
    mul(X, "3")


@case(fg.NodeInputError, r"node 'mul': input 0 \(x\) contains a object; expected an array")
def non_array_inside_a_pytree_input():
    mul({"a": X, "b": object()}, Y)


@case(
    fg.NodeInputError,
    r"node 'scale': keyword argument 'c' is an array; keyword-only arguments are static.*"
    r"positional",
)
def array_as_a_static_keyword():
    scale(X, c=jnp.array(2.0))


@case(
    fg.NodeInputError,
    r"node 'mul': cannot be called with 1 positional input.*missing a required argument: 'y'"
    r".*expected mul\(x, y\)",
)
def too_few_inputs():
    mul(X)


@case(
    fg.NodeInputError,
    r"node 'scale': cannot be called.*unexpected keyword argument 'k'.*expected scale\(x, \*, c\)",
)
def unknown_static_keyword():
    scale(X, c=2.0, k=1)


# -- backward rules ------------------------------------------------------------------------------


@case(
    fg.MissingBackwardError,
    r"node 'no_rule' was differentiated before it has a backward.*"
    r"@no_rule\.backward",
)
def differentiating_a_node_without_a_backward():
    @fg.node(register=False)
    def no_rule(x):
        return 2.0 * x

    jax.grad(lambda x: jnp.sum(no_rule(x)))(X)


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': backward returned 1 gradient\(s\), expected 2 \(one per positional "
    r"input: x, y\)",
)
def backward_returns_too_few_gradients():
    grad_of(bad_rule_node(lambda x, y, out, g: (g * y,)), X, Y)


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': backward returned 3 gradient\(s\), expected 2",
)
def backward_returns_too_many_gradients():
    grad_of(bad_rule_node(lambda x, y, out, g: (g * y, g * x, g)), X, Y)


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': backward returned a dict, expected a tuple of 2 gradients",
)
def backward_returns_a_dict_not_a_tuple():
    grad_of(bad_rule_node(lambda x, y, out, g: {"x": g * y, "y": g * x}), X, Y)


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': gradient for input 'y' has shape \(2, 3\), expected \(3,\) \(the shape of "
    r"y\)\. If y was broadcast in the forward, sum the gradient back",
)
def gradient_of_a_broadcast_input_not_summed_back():
    grad_of(bad_rule_node(lambda x, y, out, g: (g * y, g * x)), X, Y)


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': gradient for input 'x' has dtype float16, expected float32 \(the dtype "
    r"of x\); cast it",
)
def gradient_of_the_wrong_dtype():
    grad_of(
        bad_rule_node(lambda x, y, out, g: ((g * y).astype(jnp.float16), jnp.sum(g * x, 0))),
        X,
        Y,
    )


@case(
    fg.BackwardRuleError,
    r"node 'bad_node': backward returned None for input 'y', which is differentiable "
    r"\(float32\); return jnp\.zeros_like\(y\)",
)
def none_gradient_for_a_differentiable_input():
    grad_of(bad_rule_node(lambda x, y, out, g: (g * y, None)), X, Y)


@case(fg.BackwardRuleError, r"node 'bad_node': gradient for input 'x' is a str, expected an array")
def gradient_that_is_not_an_array():
    grad_of(bad_rule_node(lambda x, y, out, g: ("dx", jnp.sum(g * x, 0))), X, Y)


@case(
    fg.BackwardRuleError,
    r"node 'pair_sum': gradient for input 'p' has structure .*, expected .* \(the structure of p\)",
)
def gradient_with_the_wrong_pytree_structure():
    @fg.node(register=False)
    def pair_sum(p):
        return p[0] + p[1]

    @pair_sum.backward
    def _(p, out, g):
        return [g, g]  # a list for a tuple input

    jax.grad(lambda a, b: jnp.sum(pair_sum((a, b))))(Y, Y)


# -- integer inputs: no gradient, handled --------------------------------------------------------


@case(
    TypeError,
    r"fg\.value_and_grad\(lookup\): argument 0 has dtype int32; gradients need floating inputs",
)
def differentiating_with_respect_to_integers():
    def lookup(i, table):
        return jnp.sum(table[i])

    fg.value_and_grad(lookup)(jnp.array([0, 1]), X)


def test_integer_inputs_get_no_gradient_and_are_handled() -> None:
    """Not an error: an integer input gets a float0 (no) gradient whatever its rule returns."""

    @fg.node(register=False)
    def gather(table, idx):
        return table[idx]

    @gather.backward
    def _(table, idx, out, g):
        # The rule may return None for an integer input; funcgraph supplies float0 zeros.
        return jnp.zeros_like(table).at[idx].add(g), None

    table = jnp.arange(6.0).reshape(3, 2)
    idx = jnp.array([2, 0, 2])

    def loss(t, i):
        return jnp.sum(gather(t, i) ** 2)

    g_table, g_idx = jax.grad(loss, argnums=(0, 1), allow_int=True)(table, idx)
    assert g_idx.dtype == jax.dtypes.float0 and g_idx.shape == idx.shape
    expected = jax.grad(fg.reference(loss))(table, idx)
    np.testing.assert_allclose(g_table, expected)
    g_graph = fg.grad(loss)(table, idx)
    np.testing.assert_allclose(g_graph, expected)
    assert fg.trace(loss, table, idx).input_gradients({})[1] is None


# -- shapes between nodes ------------------------------------------------------------------------


@case(
    fg.ShapeMismatchError,
    r"node 'matmul': inputs x \(float32, shape \(3, 4\)\) and w \(float32, shape \(5, 2\)\) do "
    r"not fit: dot_general requires contracting dimensions",
)
def matmul_of_shapes_that_do_not_fit():
    matmul(jnp.ones((3, 4)), jnp.ones((5, 2)))


@case(
    fg.ShapeMismatchError,
    r"node 'mul': inputs x \(float32, shape \(3, 2\)\) and y \(float32, shape \(3,\)\) do not "
    r"fit: .*[Ii]ncompatible shapes for broadcasting",
)
def edge_between_nodes_whose_shapes_do_not_broadcast():
    def net(x, w):
        h = matmul(x, w)  # (3, 2)
        return mul(h, x[0])  # (3,) against (3, 2): the wrong edge

    fg.trace(net, jnp.ones((3, 3)), jnp.ones((3, 2)))


@case(
    fg.ShapeMismatchError,
    r"node 'matmul': inputs x \(float32, shape \(8, 3\)\) and w \(float32, shape \(4, 2\)\) do "
    r"not fit",
)
def shape_mismatch_inside_jit():
    jax.jit(lambda x, w: matmul(x, w))(jnp.ones((8, 3)), jnp.ones((4, 2)))


@case(
    fg.ShapeMismatchError,
    r"node 'total' \(axis=2\): input x \(float32, shape \(3,\)\) does not fit: axis 2 is out of "
    r"bounds",
)
def reduction_over_an_axis_the_input_lacks():
    total(jnp.ones(3), axis=2)


@case(
    fg.NodeInputError,
    r"node 'mul': inputs x \(float32, shape \(3,\)\) and y \(float16, shape \(3,\)\) have "
    r"dtypes that do not mix: Input dtypes .* have no available implicit dtype promotion path",
)
def inputs_of_dtypes_that_do_not_mix():
    # conftest turns on strict dtype promotion, so float16 * float32 is refused, not upcast.
    mul(jnp.ones(3), jnp.ones(3, jnp.float16))


# -- tracing -------------------------------------------------------------------------------------


@case(
    fg.TraceError,
    r"fg\.trace\(relu_by_hand\): the function branches in Python on a traced value.*"
    r"jax\.lax\.cond",
)
def python_if_on_a_traced_value():
    def relu_by_hand(x):
        return x if x > 0 else 0.0 * x

    fg.trace(relu_by_hand, jnp.array(1.0))


@case(fg.TraceError, r"branches in Python on a traced value.*TracerBoolConversionError")
def python_if_inside_a_node_forward():
    @fg.node(register=False)
    def branchy(x):
        if jnp.sum(x) > 0:
            return x
        return -x

    fg.trace(lambda x: branchy(x), jnp.ones(3))


@case(fg.TraceError, r"fg\.trace\(sign_flip\): the function branches in Python")
def tracing_a_node_that_branches_names_the_node():
    @fg.node(register=False)
    def sign_flip(x):
        return x if jnp.sum(x) > 0 else -x

    fg.trace(sign_flip, jnp.ones(3))


@case(
    fg.TraceError,
    r"fg\.trace\(loop\): .*branches in Python",
)
def python_while_on_a_traced_value():
    def loop(x):
        while jnp.sum(x) < 10.0:
            x = mul(x, x + 1.0)
        return x

    fg.trace(loop, jnp.ones(2))


@case(
    fg.TraceError,
    r"graph 'f': argument edge e0:float32\[3\] got shape \(4,\); trace it again",
)
def graph_called_with_other_shapes():
    def f(x):
        return total(mul(x, x))

    fg.trace(f, jnp.ones(3)).forward(jnp.ones(4))


@case(fg.TraceError, r"graph 'f' was traced for arguments .*got .*; trace it again")
def graph_called_with_another_structure():
    def f(x):
        return total(x)

    fg.trace(f, jnp.ones(3)).forward(jnp.ones(3), jnp.ones(3))


@case(ValueError, r"graph 'f' has non-scalar outputs \['e\d+:float32\[3\]'\]; pass cotangent=")
def backward_of_a_vector_output_without_a_cotangent():
    def f(x):
        return mul(x, x)

    fg.trace(f, jnp.ones(3)).backward(jnp.ones(3))


@case(
    ValueError,
    r"graph 'f': cotangent for output e\d+:float32\[3\] has shape \(2,\), expected \(3,\)",
)
def cotangent_of_the_wrong_shape():
    def f(x):
        return mul(x, x)

    fg.trace(f, jnp.ones(3)).backward(jnp.ones(3), cotangent=jnp.ones(2))


@case(TypeError, r"fg\.value_and_grad\(f\): the function must return a scalar, got shape \(3,\)")
def value_and_grad_of_a_vector_function():
    def f(x):
        return mul(x, x)

    fg.value_and_grad(f)(jnp.ones(3))


@case(
    TypeError,
    r"fg\.value_and_grad\(f\): argnums=1 but only 1 positional arguments were given",
)
def value_and_grad_with_argnums_out_of_range():
    def f(x):
        return total(x)

    fg.value_and_grad(f, argnums=1)(jnp.ones(3))


# -- checkpoints: refused whole, never unpickled -------------------------------------------------


def _state() -> dict[str, Any]:
    return {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.zeros(2), "step": jnp.asarray(7)}


def _saved(directory: Path) -> Path:
    return save_checkpoint(directory / "run.ckpt", _state())


def _load_refused(path: Path, like: Any) -> None:
    """Load, and whatever is raised, check the file and the template were left as they were."""
    before = path.read_bytes() if path.exists() else None
    snapshot = jax.tree_util.tree_map(np.array, like)
    try:
        load_checkpoint(path, like=like)
    finally:
        after = path.read_bytes() if path.exists() else None
        assert before == after
        jax.tree_util.tree_map(np.testing.assert_array_equal, like, snapshot)


@case(
    CheckpointError,
    r"checkpoint .*run\.ckpt: unreadable, truncated or corrupted.*nothing was "
    r"loaded",
)
def checkpoint_truncated(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _load_refused(path, _state())


@case(CheckpointError, r"checkpoint .*run\.ckpt.*(corrupted|checksum)")
def checkpoint_with_flipped_bytes(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    # Flip a byte of every stored member's payload: the zip CRC or the SHA-256 must notice.
    for offset in range(40, len(data) - 200, 97):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    _load_refused(path, _state())


@case(
    CheckpointError,
    r"checkpoint .*does not match the template \(nothing was loaded\).*"
    r"SHA-256 checksum does not match",
)
def checkpoint_with_tampered_values(tmp_path):
    # A well-formed archive whose array bytes were changed after saving (zip CRCs recomputed).
    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    leaf = next(name for name in sorted(members) if name.startswith("leaf_"))
    payload = bytearray(members[leaf])
    payload[-1] ^= 0x01
    members[leaf] = bytes(payload)
    with zipfile.ZipFile(path, "w") as z:
        for name, payload in members.items():
            z.writestr(name, payload)
    _load_refused(path, _state())


@case(
    CheckpointError,
    r"checkpoint .*does not match the template \(nothing was loaded\).*"
    r"it holds 3 arrays, the template has 2",
)
def checkpoint_from_another_model(tmp_path):
    path = _saved(tmp_path)
    _load_refused(path, {"layers": [jnp.zeros((3, 2)), jnp.zeros(2)]})


@case(
    CheckpointError,
    r"does not match the template.*\['w'\]: saved shape \[3, 2\], template "
    r"has \[4, 2\]",
)
def checkpoint_with_other_shapes(tmp_path):
    path = _saved(tmp_path)
    _load_refused(path, {**_state(), "w": jnp.zeros((4, 2))})


@case(
    CheckpointError,
    r"does not match the template.*\['b'\]: saved dtype float32, template has "
    r"bfloat16",
)
def checkpoint_with_other_dtypes(tmp_path):
    path = _saved(tmp_path)
    _load_refused(path, {**_state(), "b": jnp.zeros(2, jnp.bfloat16)})


@case(CheckpointError, r"checkpoint .*plain\.npz: not a funcgraph checkpoint \(no __meta__")
def checkpoint_that_is_a_plain_npz(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.zeros((3, 2)))
    _load_refused(path, _state())


class _Exploit:
    """Unpickling this would create a directory: the proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


@case(CheckpointError, r"checkpoint .*evil\.ckpt: unreadable, truncated or corrupted")
def checkpoint_that_is_a_pickle(tmp_path):
    path, marker = tmp_path / "evil.ckpt", tmp_path / "unpickled"
    path.write_bytes(pickle.dumps({"w": _Exploit(marker)}))
    try:
        _load_refused(path, _state())
    finally:
        assert not marker.exists(), "a checkpoint was unpickled"


@case(
    CheckpointError,
    r"checkpoint .*evil\.npz: unreadable, truncated or corrupted.*"
    r"allow_pickle",
)
def checkpoint_with_a_pickled_object_array(tmp_path):
    path, marker = tmp_path / "evil.npz", tmp_path / "unpickled"
    np.savez(path, __meta__=np.array([_Exploit(marker)], dtype=object))
    try:
        _load_refused(path, _state())
    finally:
        assert not marker.exists(), "a checkpoint was unpickled"


@case(
    CheckpointError,
    r"checkpoint: cannot store a leaf of type str; expected arrays, PRNG keys "
    r"or numbers",
)
def saving_a_state_that_cannot_be_stored_keeps_the_old_checkpoint(tmp_path):
    path = _saved(tmp_path)
    before = path.read_bytes()
    try:
        save_checkpoint(path, {**_state(), "note": "epoch 3"})
    finally:
        # Atomic saves: the previous checkpoint is whole and no temporary file is left behind.
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]


# -- training data and labels --------------------------------------------------------------------


def _fit(data: tuple[Any, ...], *, num_classes: int | None = 3, **kwargs: Any) -> Any:
    import optax

    from funcgraph.train import fit

    def loss(params, x, labels):
        return fg.nodes.softmax_cross_entropy(fg.nodes.matmul(x, params), labels)

    return fit(
        loss,
        jnp.zeros((4, 3)),
        optax.sgd(0.1),
        data,
        key=jax.random.key(0),
        epochs=1,
        batch_size=2,
        num_classes=num_classes,
        progress=False,
        **kwargs,
    )


_X = np.ones((6, 4), np.float32)


@case(
    DataError,
    r"data: 1 label\(s\) out of range, e\.g\. label 3 at flat index 4; expected "
    r"class indices in 0\.\.2",
)
def labels_out_of_range():
    _fit((_X, np.array([0, 1, 2, 0, 3, 1])))


@case(DataError, r"eval_data: 1 label\(s\) out of range, e\.g\. label -1 .*in 0\.\.2")
def negative_label_in_the_evaluation_set():
    _fit((_X, np.zeros(6, np.int32)), eval_data=(_X[:2], np.array([0, -1])))


@case(DataError, r"data: labels have dtype float32; expected integer class indices in 0\.\.2")
def float_labels():
    _fit((_X, np.zeros(6, np.float32)))


@case(
    DataError,
    r"data: labels have shape \(6, 3\); expected \(6,\), one class index per "
    r"example \(not one-hot\)",
)
def one_hot_labels():
    _fit((_X, np.eye(3, dtype=np.int32)[[0, 1, 2, 0, 1, 2]]))


@case(
    DataError,
    r"data: inputs have 6 examples \(shape \(6, 4\)\) but labels have 5 "
    r"\(shape \(5,\)\); the leading axes must match",
)
def inputs_and_labels_of_different_lengths():
    _fit((_X, np.zeros(5, np.int32)))


@case(
    fg.NodeInputError,
    r"node 'softmax_cross_entropy': input 'labels' must hold integer class "
    r"indices, got dtype float32",
)
def loss_node_given_float_labels():
    fg.nodes.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros(2))


@case(
    fg.ShapeMismatchError,
    r"node 'softmax_cross_entropy': input 'labels' has shape \(2, 3\), "
    r"expected \(2,\) \(the scores' shape without the class axis\)",
)
def loss_node_given_one_hot_labels():
    fg.nodes.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.eye(3, dtype=jnp.int32)[:2])


@case(
    NonFiniteLossError,
    r"fit: the loss is (nan|inf) at step 0 \(epoch 0, batch 0\); the "
    r"parameters were finite.*fg\.debug_nans",
)
def loss_that_becomes_nan_during_training():
    x = _X.copy()
    x[:, 0] = np.inf  # inputs that overflow the forward: inf * 0 = NaN in the first step
    _fit((x, np.zeros(6, np.int32)))


@case(CheckpointError, r"checkpoint .*run\.ckpt: unreadable, truncated or corrupted")
def fit_resuming_from_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    try:
        _fit((_X, np.zeros(6, np.int32)), checkpoint=path)
    finally:
        assert path.read_bytes() == b"PK\x03\x04 not really a zip"  # not overwritten


# -- NaN and Inf in inputs -----------------------------------------------------------------------


def test_nan_and_inf_in_inputs_are_reported_by_debug_nans() -> None:
    """Not an exception: `fg.debug_nans` names the non-finite arguments before running a node."""

    def loss(params, x):
        return total(mul(params["w"], x))

    report = fg.debug_nans(loss, {"w": jnp.array([1.0, jnp.inf])}, jnp.array([jnp.nan, 1.0]))
    assert report.phase == "input"
    text = str(report)
    assert re.search(r"args\[0\]\['w'\]: float32\[2\].*1 \+inf", text)
    assert re.search(r"args\[1\]: float32\[2\].*1 NaN", text)


# -- safety --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["check", "--help"], ["draw", "--help"]])
def test_cli_help_says_naming_a_file_runs_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    cli = pytest.importorskip("funcgraph.cli")
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"imports it: its top-level code runs", text)
    assert "Only check code you trust" in text


# -- the catalogue runner ------------------------------------------------------------------------


def test_catalogue_has_at_least_25_cases() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_catalogue(name: str, tmp_path: Path) -> None:
    c = CASES[name]
    takes_dir = len(inspect.signature(c.make_mistake).parameters) == 1
    with pytest.raises(c.error) as info:
        c.make_mistake(tmp_path) if takes_dir else c.make_mistake()
    assert isinstance(info.value, c.error)
    message = str(info.value)
    assert re.search(c.match, message, re.DOTALL), f"message does not match:\n{message}"
    if isinstance(info.value, fg.FuncgraphError) and info.value.__cause__ is not None:
        # A translated error keeps the original one as its cause, for the full story.
        assert isinstance(info.value.__cause__, Exception)
