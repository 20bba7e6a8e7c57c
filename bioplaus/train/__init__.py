"""One trainer above the back-ends: weights, optimiser, generators, decorrelation update,
divergence guard and checkpoints (``train/trainer.py``), for every network type and
back-end. What differs comes through hooks: each network type's
(``bioplaus/networks/<kind>.py``) on torch, and the rate type's on brian2
(``train/brian2_trainer.py``: its trials run there and hand back the same records)."""
