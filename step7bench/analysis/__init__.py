"""Turns trial results into verdicts: costs to target, paired speedups with bootstrap intervals,
verdicts on claims, the cumulative table with its interaction, controls and the A/A check.

Reads results, never trains.
"""
