"""One local Ray cluster shared by the integration tests (started and stopped here only)."""

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    import ray

    if not ray.is_initialized():
        ray.init("local", num_cpus=2, num_gpus=0, include_dashboard=False,
                 object_store_memory=256 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()
