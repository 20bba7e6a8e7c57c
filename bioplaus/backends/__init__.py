"""Simulation back-ends: ``torch`` (discrete, batched, CPU/GPU) and ``brian2`` (continuous time)."""
