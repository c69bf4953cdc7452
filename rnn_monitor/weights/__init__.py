"""The weight part: per-gate snapshots, L2 norms, update ratios, non-finite counts, histograms and
heatmap images of every monitored layer (`monitor`; the numbers are `rnn_monitor.stats.weights`)."""
