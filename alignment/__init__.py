"""Alignment of per-scene JOD scales onto one unified scale (DXOMARK portrait method)."""
