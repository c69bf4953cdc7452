"""The JSON each dashboard view asks for, one module per view (runs, gradients, text, units,
health, alerts). Each route's work is a pure ``*_impl`` function of the data source and plain
arguments that returns the JSON-able answer; `tb_plugin.plugin` only parses the request, calls it
and wraps the answer. TensorFlow-free, no HTTP, no file access."""
