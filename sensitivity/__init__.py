"""The sensitivity spectrum of a target concept (SPEC 2).

Not implemented yet: issue 4.
"""
