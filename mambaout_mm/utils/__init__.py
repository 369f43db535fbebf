"""Plumbing the rest shares: reading configs, the tools' errors and exit, what this CPU computes
natively, torch compatibility.
"""
