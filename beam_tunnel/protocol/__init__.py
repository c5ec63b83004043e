"""Wire-level pieces shared by the client and the emulator: protobuf messages,
the PlainBuffer row codec, token format and request signing. Pure: no I/O."""
