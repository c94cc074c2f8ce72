"""Every node of the library, checked by fg.check at each declared example.

One test per node and example (and per shape-taking example at hypothesis-drawn shapes), in
float32 and float64, over two seeds: the plugin's registry tests, run on funcgraph's own nodes.
"""

from __future__ import annotations

import pytest

import funcgraph.nodes  # noqa: F401  (registers the library)
from funcgraph.testing import NodeCase, registry_cases

CASES = registry_cases("funcgraph.nodes.*", dtypes=("float32", "float64"), seeds=2, shapes=2)


def test_the_library_is_registered() -> None:
    names = {case.node.name for case in CASES}
    assert len(names) >= 40, sorted(names)
    assert {"mul", "matmul", "softmax", "layer_norm", "attention"} <= names


@pytest.mark.parametrize("case", CASES, ids=str)
def test_node(case: NodeCase) -> None:
    report = case.run()
    assert {r.dtype for r in report.rows} >= {"float32", "float64"} or case.shapes
