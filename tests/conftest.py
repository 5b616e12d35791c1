"""Shared pytest configuration. Fixtures that start servers live in tests/fixtures/ as plugins."""

import importlib.util

# Each plugin module is owned by the component that provides the service it starts.
_PLUGINS = ["tests.fixtures.collector"]
pytest_plugins = [name for name in _PLUGINS if importlib.util.find_spec(name) is not None]
