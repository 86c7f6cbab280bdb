"""Fixtures for the local-stack components: real Lambda runtime processes running fixture handlers."""

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from xpi_tools.local.lambda_runtime import FunctionSpec, LambdaRuntimePool, default_rie_dir

FIXTURE_FUNCTIONS = Path(__file__).parent / "fixture_functions"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-gov-west-1",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
}


def fixture_spec(name: str, module: str, **overrides: object) -> FunctionSpec:
    fields: dict[str, object] = {
        "name": name,
        "handler": f"{module}.handler",
        "code_dir": FIXTURE_FUNCTIONS,
        "environment": {"XPI_STAGE": "unit"},
        "memory_mb": 256,
        "timeout_s": 10,
    }
    fields.update(overrides)
    return FunctionSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture
def make_pool(tmp_path: Path) -> Iterator[Callable[..., LambdaRuntimePool]]:
    pytest.importorskip("awslambdaric")
    pools: list[LambdaRuntimePool] = []

    def make(max_per_function: int = 2, **kwargs: object) -> LambdaRuntimePool:
        options: dict[str, object] = {
            "python": Path(sys.executable),
            "rie_dir": default_rie_dir(),
            "aws_env": AWS_ENV,
            "max_per_function": max_per_function,
            "log_dir": tmp_path / "logs",
        }
        options.update(kwargs)
        pool = LambdaRuntimePool(**options)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def spec_for() -> Callable[..., FunctionSpec]:
    """fixture_spec(name, module, **overrides): a FunctionSpec for a fixture handler module."""
    return fixture_spec
