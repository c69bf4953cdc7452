"""The probe: the user's fixed batch (`data`), one forward + backward pass with every monitored
layer run by the probe's loop or kernel and differentiated by the backend (`graph`), its
reductions in `keras.ops` (`reductions`, `unit_reductions`), the per-layer statistics
(`layer_stats`) and what is written under the byte cap (`writes`); `monitor` runs it each
logged epoch."""
