"""The pytest plugin, exercised on throwaway projects with no conftest and no configuration."""

from __future__ import annotations

import sys

import pytest

import funcgraph  # noqa: F401  (the registry the throwaway projects' nodes go to)

pytest_plugins = ["pytester"]

NODES = """
import jax
import jax.numpy as jnp
import funcgraph as fg


@fg.node(example=lambda key: (jax.random.normal(key, (3,)),))
def cube(x):
    return x ** 3


@cube.backward
def _cube_backward(x, out, g):
    return 3 * x * x * g


@fg.node(example=lambda key: (jax.random.normal(key, (3,)),))
def wrong_sin(x):
    return jnp.sin(x)


@wrong_sin.backward
def _wrong_sin_backward(x, out, g):
    return -jnp.cos(x) * g
"""


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Nodes the throwaway projects define land in a private registry."""
    fresh: dict = {}
    monkeypatch.setattr(sys.modules["funcgraph.node"], "_REGISTRY", fresh)
    return fresh


def test_plugin_is_active_without_configuration_and_loads_no_jax(
    pytester: pytest.Pytester,
) -> None:
    # A fresh process, as a user's project would run: the entry point alone brings the plugin.
    pytester.makepyfile(
        test_a_light="""
        import sys

        def test_nothing_heavy_was_imported(request):
            assert request.config.pluginmanager.has_plugin("funcgraph")
            assert "jax" not in sys.modules and "funcgraph" not in sys.modules
        """,
        test_b_grads="""
        def test_gradcheck_fixture_works_unconfigured(gradcheck):
            import jax
            import funcgraph as fg

            @fg.node(register=False)
            def cube(x):
                return x ** 3

            @cube.backward
            def _cube_backward(x, out, g):
                return 3 * x * x * g

            report = gradcheck(cube, jax.numpy.arange(1.0, 4.0))
            assert report.ok and {r.seed for r in report.rows} <= {0, 1}  # 2 seeds by default
        """,
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_gradcheck_fixture_passes_and_fails_with_the_table(
    pytester: pytest.Pytester, registry: dict
) -> None:
    pytester.makepyfile(mynodes=NODES)
    pytester.makepyfile(
        test_grads="""
        import jax
        from mynodes import cube, wrong_sin

        X = jax.numpy.arange(1.0, 4.0)

        def test_cube(gradcheck):
            report = gradcheck(cube, X)
            assert report.ok
            assert {r.seed for r in report.rows} <= {0}  # funcgraph_seeds = 1 below

        def test_wrong_sin(gradcheck):
            gradcheck(wrong_sin, X)
        """
    )
    pytester.makeini("[pytest]\nfuncgraph_seeds = 1\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*fg.check(wrong_sin): * checks FAILED*", "*FAIL*wrong_sin*x*autodiff*"]
    )


def test_funcgraph_case_parametrizes_over_the_registry(
    pytester: pytest.Pytester, registry: dict
) -> None:
    pytester.makepyfile(mynodes=NODES)
    pytester.makepyfile(
        test_my_nodes="""
        import mynodes  # registers its nodes

        def test_node(funcgraph_case):
            funcgraph_case.run()
        """
    )
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nfuncgraph_seeds = "1"\nfuncgraph_dtypes = ["float32"]\n'
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_node?mynodes.cube?0?? PASSED*",
            "*test_node?mynodes.wrong_sin?0?? FAILED*",
            "*FAIL*wrong_sin*autodiff*",
        ]
    )


def test_marker_picks_nodes(pytester: pytest.Pytester, registry: dict) -> None:
    pytester.makepyfile(mynodes=NODES)
    pytester.makepyfile(
        test_marked="""
        import pytest
        import mynodes

        @pytest.mark.funcgraph_nodes("*.cube")
        def test_node(funcgraph_case):
            funcgraph_case.run()
        """
    )
    pytester.makeini("[pytest]\nfuncgraph_seeds = 1\nfuncgraph_dtypes = float32\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_registry_tests_without_any_test_file(pytester: pytest.Pytester, registry: dict) -> None:
    pytester.makepyfile(mynodes=NODES)
    pytester.makeini(
        "[pytest]\n"
        "funcgraph_check_registry = true\n"
        "funcgraph_modules = mynodes\n"
        "funcgraph_nodes = mynodes.*\n"
        "funcgraph_seeds = 1\n"
        "funcgraph_dtypes = float32\n"
    )
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*funcgraph::mynodes.wrong_sin[[]0[]]*"])
    # The command-line option does the same for a glob of its own.
    result = pytester.runpytest("-p", "no:cacheprovider", "--funcgraph-nodes", "*.cube")
    result.assert_outcomes(passed=1)


def test_tolerance_options_reach_the_checker(pytester: pytest.Pytester, registry: dict) -> None:
    pytester.makepyfile(mynodes=NODES)
    pytester.makepyfile(
        test_tol="""
        import jax
        from mynodes import wrong_sin

        def test_loose(gradcheck):
            # A tolerance of 3x the values lets even a sign flip through: the user asked.
            gradcheck(wrong_sin, jax.numpy.arange(1.0, 4.0), oracles=("autodiff",),
                      contracts=False)
        """
    )
    pytester.makeini("[pytest]\nfuncgraph_rtol = 3\nfuncgraph_seeds = 1\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
