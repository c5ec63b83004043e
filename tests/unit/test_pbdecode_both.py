"""The PlainBuffer and batch-decode tests again, once with the C decoder
(``_pbdecode_c``) and once with the pure-Python one, so both meet every
format, checksum and error case those tests know.

The tests are imported, so pytest collects them here a second time under
this module's decoder fixture; in their own modules they run with whichever
decoder is installed.
"""

import pytest

from beam_tunnel.protocol import _pbdecode
from test_plainbuffer import *  # noqa: F401,F403  (collected again below)
from test_records import *  # noqa: F401,F403
from test_records_batch import *  # noqa: F401,F403


@pytest.fixture(scope="module", autouse=True, params=["c", "python"])
def decoder(request):
    """Which decoder decode_many tries first; module-scoped so hypothesis
    tests may use it (it is set once per parameter, not per example)."""
    saved = _pbdecode._c_decode_many
    if request.param == "c":
        if _pbdecode._pbdecode_c is None:
            pytest.skip("the C decoder is not built (no compiler at install time)")
        _pbdecode._c_decode_many = _pbdecode._pbdecode_c.decode_many
    else:
        _pbdecode._c_decode_many = None
    yield request.param
    _pbdecode._c_decode_many = saved
