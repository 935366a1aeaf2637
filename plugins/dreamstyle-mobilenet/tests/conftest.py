import importlib.util
import sys
from pathlib import Path

import pytest

# Test the installed package if there is one, else this source tree.
if importlib.util.find_spec("dreamstyle_mobilenet") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture
def host():
    """A plugin host with the built-ins and this plugin only (no other installed plugins)."""
    import dreamstyle_mobilenet

    from dreamstyle.plugins import PluginHost

    h = PluginHost(load_entry_points=False)
    assert h.register(dreamstyle_mobilenet, name="mobilenet"), h.errors
    return h
