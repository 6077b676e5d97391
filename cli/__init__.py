"""The `zoo` command line: a thin click layer over zoo's public API."""
