"""Built-in data set builders, one module each; importing this package registers them."""

from . import digits  # noqa: F401
