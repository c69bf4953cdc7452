"""Alert and finding kinds, their titles and the advice each alert message carries.

An **alert** says "this is hurting training now; act" (docs/alerts.md); a
**finding** is a number that is unusual but not, on its own evidence, a fault: it is logged,
listed and shown, never a reason to stop.
"""

from __future__ import annotations

VANISHING = "vanishing"
EXPLODING = "exploding"
NONFINITE = "nonfinite"
DEAD = "dead"
SATURATED = "saturated"
KINDS = (VANISHING, EXPLODING, NONFINITE, DEAD, SATURATED)

# Findings
SHORT_MEMORY = "short_memory"  # the gradient does not reach far back, but the run learns
SATURATION = "saturation"  # most units saturated, but gradient flows and the run learns
STALLED = "stalled"  # the loss stays at the constant-prediction level, gradient reaches back
EXPLODING_UNITS = "exploding_units"  # most unbounded states above exploding_state, no other sign
FINDING_KINDS = (SHORT_MEMORY, SATURATION, STALLED, EXPLODING_UNITS)

RUN = "model"  # the `layer` of alerts and findings about the whole run (its loss)

TITLES = {
    VANISHING: "vanishing gradient",
    EXPLODING: "exploding gradient",
    NONFINITE: "non-finite values",
    DEAD: "dead units",
    SATURATED: "saturated units",
    SHORT_MEMORY: "short gradient reach",
    SATURATION: "saturated units",
    STALLED: "loss at the constant-prediction level",
    EXPLODING_UNITS: "large states",
}

HELP = {
    VANISHING: (
        "usually helps: LSTM/GRU instead of SimpleRNN, check initialisation "
        "(orthogonal recurrent kernel, forget-gate bias >= 1 or chrono), shorter sequences or "
        "skip connections"
    ),
    EXPLODING: (
        "usually helps: gradient clipping (clipnorm=1.0), lower learning rate, check "
        "initialisation (recurrent kernel spectral radius <= 1)"
    ),
    NONFINITE: (
        "training has diverged; usually helps: lower learning rate, gradient clipping "
        "(clipnorm=1.0), check the data for NaN/Inf and check initialisation"
    ),
    DEAD: (
        "usually helps: check initialisation and biases, lower learning rate, tanh instead of "
        "ReLU, normalised inputs"
    ),
    SATURATED: (
        "saturated units pass almost no gradient; usually helps: normalise inputs, lower "
        "learning rate, check initialisation"
    ),
}

# What a finding means, said once in its message.
FINDING_NOTE = {
    SHORT_MEMORY: "fine for a task with short dependencies; it becomes the vanishing alert when "
                  "the loss stops improving at the constant-prediction level",
    SATURATION: "a saturated gate can be memory (a forget gate near 1); it becomes an alert when "
                "the layer also starves of gradient or the loss stays unlearned",
    STALLED: "the gradient does reach back, so this is not vanishing; often a plateau before "
             "learning starts (check the learning rate and the data if it lasts)",
    EXPLODING_UNITS: "unbounded states (ReLU / linear outputs, LSTM cell) are large; it becomes "
                     "the exploding alert when the gradient grows back through time or the loss diverges",
}
