"""Built-in datasets, one module each; importing this package registers them.

Every module here except ``base`` and private ``_*`` modules is imported, so a new data set is
one new file. Import errors propagate: a broken module is never skipped.
"""

from ...registry import import_submodules

import_submodules(__name__, __path__)
