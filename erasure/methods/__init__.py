"""The erasure methods, one file each (erasure.method states the contract, erasure.registry names them);
`search.py` holds the concept search space that AP and AGE share."""
