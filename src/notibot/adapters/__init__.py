"""Adapters: one sub-package per technology, each implementing application ports."""
