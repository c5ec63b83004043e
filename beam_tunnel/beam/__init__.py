"""Apache Beam integration: :class:`ReadFromTunnel` and its coders.

Status: experimental; the API may change.
"""

from beam_tunnel.beam.read import ReadFromTunnel

__all__ = ["ReadFromTunnel"]
