"""Reader studies from the command line: design, follow, analyse (``gazex experiment ...``)."""
