"""Training: the loop, the update strategies, and the multi-task weighting methods.

Imports the core only (never the augmentation or the course).
"""
