"""TensorFlow's own loop for the probe (`checkpointed`): the layers the kernel path does not serve,
stepped in a checkpointed `tf.while_loop` with the reductions done in its backward pass
(`adjoint`: the hand-written reverse pass of stock LSTM / GRU cells; `unit_stats`, `rows`: the
unit statistics from the gates rebuilt in the rows layout). Chosen over the keras.ops loop on
TensorFlow by measurement: the same time, a small fraction of the memory."""
