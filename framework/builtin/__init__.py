"""A small from-scratch engine with Dassl's names, signatures, config keys and checkpoint layout.

It is used when Dassl cannot be imported (Dassl is installed from its Git repository, not from the package
index). It holds only what this plugin needs; see docs/engines.md for what it leaves out.
"""
