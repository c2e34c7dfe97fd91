from __future__ import annotations

import pytest

from tests.emulator.seed import mirror_birds


@pytest.fixture(scope="session")
def sagemaker(boto_session, emulator):
    return boto_session.client("sagemaker", endpoint_url=emulator.url)


@pytest.fixture(scope="session")
def backend(emulator):
    return emulator.app.labeling


@pytest.fixture(scope="session")
def bird_keys(s3, mirror):
    """Keys of the mirror's bird images of at most 6 MB, in the annotation file's order."""
    return mirror_birds(s3)
