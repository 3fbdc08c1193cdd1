"""Built-in methods, one module each; importing this package registers them."""

from . import decoupling, erm  # noqa: F401
