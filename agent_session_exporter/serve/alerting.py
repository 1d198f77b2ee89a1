"""The error alert's thresholds, from ``thresholds.json``: the one file the monitoring mixin
(``mixin/``) renders the alerts from too, so the landing page marks a source failing exactly when
the alert it mirrors would fire (a ratio over a window, and a minimum of finished sessions)."""

from __future__ import annotations

import json
from importlib import resources

_THRESHOLDS = json.loads(resources.files(__package__).joinpath("thresholds.json").read_text(encoding="utf-8"))

#: Errors (README, "What counts as an error") per finished session above which a source is failing.
ERROR_RATIO: float = _THRESHOLDS["error_ratio"]
#: Timeouts per finished session above which the timeout alert fires.
TIMEOUT_RATIO: float = _THRESHOLDS["timeout_ratio"]
#: Fewer finished sessions in the window say too little (1 of 3 is 33 % but means little).
MIN_FINISHED: int = _THRESHOLDS["min_finished"]
#: The window both the alerts and the landing page count over.
WINDOW_SECONDS: float = _THRESHOLDS["window_minutes"] * 60.0
