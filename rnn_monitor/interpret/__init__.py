"""What each unit does, the model-driven methods (TensorFlow may be used here): occlusion
importance and prediction as read for classifiers, and text generation with every layer's
activations. The pure numpy methods live with the other statistics (`rnn_monitor.stats`) and are
re-exported here, so that ``from rnn_monitor.interpret import ...`` finds all five."""

from rnn_monitor.interpret.generation import Generation, generate
from rnn_monitor.interpret.occlusion import occlusion
from rnn_monitor.interpret.prediction import prediction_as_read
from rnn_monitor.stats.average_input import average_input
from rnn_monitor.stats.periodicity import periodic_units, periodicity

__all__ = [
    "occlusion", "prediction_as_read", "generate", "Generation", "average_input", "periodicity",
    "periodic_units",
]
