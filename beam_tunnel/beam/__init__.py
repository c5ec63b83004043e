"""Apache Beam integration: :class:`ReadFromTunnel` and its coders.

Status: experimental; the API may change.

Importing this package registers :class:`~beam_tunnel.beam.coders.ChangeRecordCoder`
for :class:`~beam_tunnel.records.ChangeRecord`.
"""

from beam_tunnel.beam import coders as _coders  # noqa: F401  (registers the coder)
from beam_tunnel.beam.read import ReadFromTunnel

__all__ = ["ReadFromTunnel"]
