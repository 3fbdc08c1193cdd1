"""Official codes the peer check runs beside ours, one module each (see peer_check.py)."""

from . import acr, crest, darp, daso, simpro

#: peer name -> its module (``REPO``, ``METHOD``, ``argv(ours, out)``, ``run(ours, code, work)``)
PEERS = {
    "acr": acr,
    "darp": darp.DARP,
    "fixmatch": darp.FIXMATCH,
    "daso": daso,
    "crest": crest,
    "simpro": simpro,
}
