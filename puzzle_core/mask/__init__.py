"""Mask optimisation (Eq. 4): the energy and its solvers."""
