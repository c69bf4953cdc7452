"""Pure numpy statistics over weight snapshots and probe arrays (no TensorFlow in here)."""
