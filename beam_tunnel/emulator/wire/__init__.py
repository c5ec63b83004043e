"""The emulator's HTTP wire layer: routing, authentication, error bodies and
the thin per-API handlers. Nothing here decides service behaviour; that is
the model's job (see ``../_architecture.md``)."""
