"""Checking hand-written gradients: oracles, contracts, blame in graphs, and the report.

```python
report = fg.check(my_node, x, y)      # or fg.check(loss, params, batch)
print(report)                         # one row per node, input and oracle
fg.assert_gradients(my_node, x, y)    # raises AssertionError with the table
```

Modules: `case` (the call under check), `compare` (dtype-derived tolerances and the float64
re-run), `oracles` (autodiff, finite differences, adjoint), `contracts`, `blame`, `report`.
"""

from funcgraph.checking.checker import ORACLES as ORACLES
from funcgraph.checking.checker import assert_gradients as assert_gradients
from funcgraph.checking.checker import check as check
from funcgraph.checking.report import Report as Report
from funcgraph.checking.report import Row as Row

__all__ = ["ORACLES", "Report", "Row", "assert_gradients", "check"]
