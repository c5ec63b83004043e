"""``python -m beam_tunnel.cli``: the same as the ``beam-tunnel`` script."""

import sys

from beam_tunnel.cli import main

sys.exit(main())
