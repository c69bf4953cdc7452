"""The "RNN Monitor" TensorBoard dashboard (entry point `tensorboard_plugins: rnn_monitor`)."""
