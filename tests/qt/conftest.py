"""Qt warnings fail the tests of tests/qt, during the test and during its fixtures' teardown.

The machinery (harmless list, message handler, ``no_qt_log`` opt-out) is shared with tests/ui:
see :mod:`tests.qt_support`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.qt_support import fail_on_qt_warnings as fail_on_qt_warnings  # autouse fixture
from tests.qt_support import mark_no_qt_log

HERE = Path(__file__).parent


@pytest.fixture
def echo_qt_messages() -> bool:
    """No windows here: every Qt message goes to stderr, shown with a failing test's output."""
    return True


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_no_qt_log(items, HERE)
