"""The log directory: its contract (`metadata`, TF-free, shared with the plugin), the event
writer (`writer`) and PNG images (`images`) on the way in, the event reader (`events`) and
`load_run` (`reader`) on the way out."""
