"""Apache Beam integration: ReadFromTunnel and its coders."""
