"""The provider spec language (``model.py``) and its reader (``provider.py``).

The provider registry (``read/providers``) holds the specs' classes, and the specs' reader is built on
the providers' base: the registry is imported first, whichever of the two a program names first.
"""

import agent_session_exporter.read.providers  # noqa: F401
