"""Signaling decoders (BSSMAP/DTAP, S1AP/NAS-EPS), identity correlation and behaviour events."""
