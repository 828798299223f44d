"""Entry-point module of the optical_dl plugin (hooks are being written)."""
