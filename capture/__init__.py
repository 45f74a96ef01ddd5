"""Packet sources and the transport stack below the signaling payloads (link, IP, SCTP, M3UA, SCCP, IPA)."""
