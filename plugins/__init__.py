"""zoo's built-in architectures, installed as `zoo.plugins` and registered through the `zoo.models`
entry-point group exactly like a third-party plugin."""
