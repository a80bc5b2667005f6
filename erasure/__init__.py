"""Concept erasure by fine-tuning (SPEC 3): AP, ESD, UCE, CA and MCE behind one registry.

Not implemented yet: the engine is issue 3 (ESD, AP) and issue 6 (UCE, CA, MCE).
"""
