"""A run seen from outside the loop: events, the run directory, the command channel and heartbeat, run listing, reporters. Imports no torch."""
