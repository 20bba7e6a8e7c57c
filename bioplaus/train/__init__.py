"""One trainer above the back-ends: weights, optimiser, generators, decorrelation update,
divergence guard and checkpoints. The back-ends only estimate (``train/trainer.py`` asks the
torch back-end, ``brian2`` runs its trials and hands back the same records)."""
