"""ShapesWorld: the procedural captioned world and the recipes that train the embedded models."""
