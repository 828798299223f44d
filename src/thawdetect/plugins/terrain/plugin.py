"""Entry-point module of the terrain plugin (hooks are being written)."""
