"""The app's UI: one module per tab (its builder and thin handlers), shared state, input checks and the
error guard. No compute here: the libraries do the work."""
