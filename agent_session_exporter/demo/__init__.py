"""Built-in simulators of the six provider APIs, for ``--demo`` and the tests."""
