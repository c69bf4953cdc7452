"""The model side: which layers are recurrent and how their gates are laid out (`anatomy`), and
the layer's own cell stepped by hand for the probe (`unroll`, TensorFlow)."""
