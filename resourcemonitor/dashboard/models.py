"""No models: this app reads the others."""
