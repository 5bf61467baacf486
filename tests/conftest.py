import os

import pytest
from hypothesis import settings

# Hypothesis' 200 ms deadline per example measures the machine, not the code: on this
# 2-core machine with a TCG VM running beside the suite, a decoding example took longer
# and failed as "DeadlineExceeded". The properties are what the tests are for.
settings.register_profile("tcplab", deadline=None)
settings.load_profile("tcplab")


def pytest_collection_modifyitems(config, items):
    """Root tests need root and a real kernel; elsewhere they are skipped with a reason."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, NFQUEUE, tracefs)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
