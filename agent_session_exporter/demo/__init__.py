"""Built-in simulators of the five provider APIs, for ``--demo`` and the tests."""
