import os

import pytest


def pytest_collection_modifyitems(config, items):
    """Root tests need root and a real kernel; elsewhere they are skipped with a reason."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, NFQUEUE, tracefs)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)
