"""What people run: the ``sigloc`` command line and the jobs it wires together."""
