"""PyTorch back-end: pure step functions, rollouts, perturbation driver, trainer."""
