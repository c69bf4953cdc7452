"""TensorFlow's own loop for the probe (`checkpointed`): the layers the kernel path does not serve,
stepped in a checkpointed `tf.while_loop` (`layer_loop`, cut in `segments`) with the reductions
done in its backward pass (`taped_reverse`: the generic reverse pass by tape; `adjoint`: the
hand-written reverse pass of stock LSTM / GRU cells; `step_reductions`: what each step is reduced
to; `unit_stats`, `rows`: the unit statistics from the gates rebuilt in the rows layout). Chosen
over the keras.ops loop on TensorFlow by measurement: the same time, a small fraction of the
memory."""
