"""One local Ray instance for the whole session (starting one costs several seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("ray", reason="the `ray` extra is not installed")

from tokenclub.scale.runtime import RayRuntime, connect


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[RayRuntime]:
    runtime = connect(num_cpus=2)
    yield runtime
    runtime.close()
