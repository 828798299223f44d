"""Entry-point module of the insar_sbas plugin (hooks are being written)."""
