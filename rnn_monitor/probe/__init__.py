"""The probe: the user's fixed batch (`data`), one forward + backward pass with every monitored
layer unrolled (`monitor`, through `rnn_monitor.model.unroll`), its per-layer reductions
(`layer_stats`) and what is written under the byte cap (`writes`)."""
