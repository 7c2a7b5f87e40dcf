"""Shared foundations: errors, settings, digests. Imports nothing heavy."""
