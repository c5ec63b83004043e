"""A ReadFromTunnel pipeline as a program, for tests that kill it.

Usage: python pipeline_main.py ENDPOINT INSTANCE TABLE TUNNEL LOG {unbounded|caught_up|base_data}

unbounded and caught_up read a Stream tunnel (forever, or until caught up);
base_data reads a BaseData tunnel.
The AccessKey comes from the ALIBABA_CLOUD_* environment variables, as on a
real worker. Records are appended to LOG (JSON lines, fsynced) by RecordLog.
"""

import sys

import apache_beam as beam

from beam_kit import FAST_LEASE, RecordLog, fnapi_options

from beam_tunnel import ReadFromTunnel


def main(argv) -> None:
    endpoint, instance, table, tunnel, log, mode = argv
    # A killed pipeline's channels move to the next one after the lease
    # timeout: short here, so the restart test does not wait long.
    options = dict(FAST_LEASE, max_bundle_records=100, heartbeat_timeout_s=8.0)
    with beam.Pipeline(options=fnapi_options()) as pipeline:
        _ = (
            pipeline
            | ReadFromTunnel(endpoint=endpoint, instance=instance, table=table, tunnel=tunnel,
                             tunnel_type="BaseData" if mode == "base_data" else "Stream",
                             stop_when_caught_up=(mode == "caught_up"), **options)
            | beam.ParDo(RecordLog(log))
        )


if __name__ == "__main__":
    main(sys.argv[1:])
