"""Pipelines built on ``beam_tunnel.ReadFromTunnel``: what users of the Tunnel
Service would otherwise write themselves.

* ``sync_table`` - full-then-incremental sync of a table into a SQL database
  (``python -m pipelines.sync_table --help``).
* ``event_time_counts`` - changes per minute per action and key prefix, by
  event time (``python -m pipelines.event_time_counts --help``).

Status: experimental; the command lines may change.
"""
