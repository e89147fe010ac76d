"""Measurement: a device-synced clock, energy meters, FLOP counting, the device fingerprint.

Knows nothing of techniques or the training loop.
"""
