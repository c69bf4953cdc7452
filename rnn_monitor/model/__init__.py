"""The model side: which layers are recurrent and how their gates are laid out (`anatomy`), the
cell stepped by hand (`stepping`), the stock cells' gate arithmetic (`gates`), and how the probe
runs a layer (`patch`): through its own fused kernel (`fused_kernel`), TensorFlow's
checkpointed loop (`tensorflow`) or the keras.ops loop of the other backends (`perturbed_loop`)."""
