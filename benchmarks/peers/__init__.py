"""Official codes the peer check runs beside ours, one module each (see peer_check.py)."""

from . import acr

#: peer name -> its module (``REPO``, ``METHOD``, ``argv(ours, out)``, ``run(ours, code, work)``)
PEERS = {"acr": acr}
