"""Connecting to Ray: an existing cluster by address, or a small local instance for one machine.

Imported only where Ray is used, so that tokenclub works without the `ray` extra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tokenclub.errors import StateError

LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""Object store of a local instance: batches are small and stream through, so a little is enough."""


def require_ray() -> None:
    """Fail with one clear line when the `ray` extra is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise StateError("Ray is not installed: pip install 'tokenclub[ray]'") from None


@dataclass(slots=True)
class RayRuntime:
    """A connection to Ray; `close` shuts down only an instance this object started."""

    started: bool
    cpus: int

    def close(self) -> None:
        import ray

        if self.started and ray.is_initialized():
            ray.shutdown()


def connect(address: str | None = None, num_cpus: int | None = None) -> RayRuntime:
    """Join the cluster at `address` (e.g. ``ray://head:10001`` or ``auto``), or start a local instance."""
    require_ray()
    import ray
    from ray.data import DataContext

    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    if ray.is_initialized():
        return RayRuntime(False, _cluster_cpus())
    if address is not None:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        return RayRuntime(False, _cluster_cpus())
    ray.init(
        num_cpus=num_cpus,
        object_store_memory=LOCAL_OBJECT_STORE_BYTES,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return RayRuntime(True, _cluster_cpus())


def _cluster_cpus() -> int:
    import ray

    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return max(1, int(resources.get("CPU", 1)))
