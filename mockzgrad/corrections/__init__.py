"""corrections layer."""
