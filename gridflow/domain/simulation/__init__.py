"""The what-if simulation on the lifecycle core: the stream format and its scripted people (model),
the discrete-event engine, streams read as they go, generated streams, and the rates it reports."""
