"""`python -m rnn_monitor.cli ...`, the same as the `rnn-monitor` command."""

import sys

from rnn_monitor.cli.main import main

sys.exit(main())
