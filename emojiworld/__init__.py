"""EmojiWorld: ~1,250 real, named concepts (colour emoji artwork) as a second embedded world."""
