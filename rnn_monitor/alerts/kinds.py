"""Alert kinds, their titles and the advice each alert message carries."""

from __future__ import annotations

VANISHING = "vanishing"
EXPLODING = "exploding"
NONFINITE = "nonfinite"
DEAD = "dead"
SATURATED = "saturated"
KINDS = (VANISHING, EXPLODING, NONFINITE, DEAD, SATURATED)

TITLES = {
    VANISHING: "vanishing gradient",
    EXPLODING: "exploding gradient",
    NONFINITE: "non-finite values",
    DEAD: "dead units",
    SATURATED: "saturated units",
}

HELP = {
    VANISHING: (
        "usually helps: LSTM/GRU instead of SimpleRNN, check initialisation "
        "(orthogonal recurrent kernel), shorter sequences or skip connections"
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
        "usually helps: check initialisation, lower learning rate, tanh instead of ReLU, "
        "normalised inputs"
    ),
    SATURATED: (
        "saturated units pass almost no gradient; usually helps: normalise inputs, lower "
        "learning rate, check initialisation"
    ),
}
