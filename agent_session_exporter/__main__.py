import sys

from agent_session_exporter.cli import main

sys.exit(main())
