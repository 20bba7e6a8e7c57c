"""Analysis of trained networks and run directories (figures, comparisons).

Modules:

- :mod:`.dynamics` — linear CKA, Procrustes distance, participation ratio, PCA (aligned
  across networks), eigen-spectra of W_rec D_rec;
- :mod:`.fixed_points` — fixed and slow points of the rate dynamics at a constant input,
  with Jacobian eigenvalues (Sussillo & Barak 2013);
- :mod:`.compare` — ``compare_runs(A, B, out)``: the report of ``bioplaus compare``;
- :mod:`.plots` — learning curves of run directories;
- :mod:`.sweep_plots` — the standard sweep figure (final metric against σ per rule);
- :mod:`.alignment` — ``alignment(rule, spec, params, inputs, targets)``: the angle between
  a rule's estimate and the exact gradient, per layer and over all parameters.
"""

from .alignment import alignment, angles

__all__ = ["alignment", "angles"]
