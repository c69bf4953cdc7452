"""The `rnn-monitor` command line: `main` (argparse and dispatch), one module per command
(`report`, `check`) and `terminal` (colour, sparklines, wrapping). Reads logs only through
`rnn_monitor.logdir.reader`: no TensorFlow."""
