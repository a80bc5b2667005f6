"""The app's input checks and error guard (no compute: the libraries do the work)."""
