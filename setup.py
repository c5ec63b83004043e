"""Packaging for beam_tunnel."""

import os

from setuptools import Extension, find_packages, setup

_HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(_HERE, "README.md"), encoding="utf-8") as readme:
    _LONG_DESCRIPTION = readme.read()

# The official tablestore SDK (used only by the tests, to prove the emulator is
# wire-compatible) needs protobuf < 6, and proto-plus >= 1.28.3 needs
# protobuf >= 6.33.5, so the test extra pins both to keep pip's resolver from
# giving up. The library itself runs on protobuf 5.29+ and 6.x.
_TEST_REQUIRES = [
    # The release the project is developed and measured against, so CI
    # resolves one known-good set of packages.
    "apache-beam==2.77.0",
    # Beam DataFrames (tests/beam/test_rows.py): the range apache-beam[dataframe] asks for.
    "pandas>=1.4.3,!=1.5.0,!=1.5.1,<2.4",
    "pytest>=8",
    "pytest-timeout>=2.3",
    "hypothesis>=6.100",
    "tablestore==6.4.8",
    "protobuf>=5.29,<6",
    "proto-plus<1.28.3",
]

# `beam-tunnel lag --plot` draws with matplotlib; the rest of monitoring
# needs nothing beyond the library's own dependencies.
_MONITOR_REQUIRES = ["matplotlib>=3.5"]

# pipelines/sync_table.py writes through SQLAlchemy (SQLite needs nothing
# more); psycopg is the PostgreSQL driver the tests use.
_PIPELINES_REQUIRES = ["SQLAlchemy>=2.0,<3", "psycopg[binary]>=3.1,<4"]

setup(
    name="beam_tunnel",
    version="0.1.0",
    description="Tablestore Tunnel Service client, emulator and Apache Beam source",
    long_description=_LONG_DESCRIPTION,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # pipelines/ ships too, so `--setup_file` gives remote workers its DoFns.
    packages=find_packages(include=["beam_tunnel", "beam_tunnel.*", "pipelines", "pipelines.*"]),
    package_data={"beam_tunnel.protocol": ["*.proto"]},
    # The PlainBuffer decoder's C twin: optional, so an install without a
    # compiler still works (and decodes in pure Python).
    ext_modules=[
        Extension("beam_tunnel.protocol._pbdecode_c", ["beam_tunnel/protocol/_pbdecode_c.c"], optional=True),
    ],
    install_requires=[
        "apache-beam>=2.60,<3",
        "protobuf>=5.29,<7",
        "requests>=2.28",
    ],
    extras_require={
        "test": _TEST_REQUIRES + _MONITOR_REQUIRES + _PIPELINES_REQUIRES,
        "monitor": _MONITOR_REQUIRES,
        "pipelines": _PIPELINES_REQUIRES,
        # grpcio-tools 1.71 bundles protoc 29, whose generated code runs on
        # protobuf 5.29 and later.
        "dev": _TEST_REQUIRES + _MONITOR_REQUIRES + _PIPELINES_REQUIRES + ["grpcio-tools>=1.71,<1.72"],
    },
    entry_points={"console_scripts": ["beam-tunnel=beam_tunnel.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
    ],
)
