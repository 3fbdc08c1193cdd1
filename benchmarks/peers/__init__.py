"""Official codes the peer check runs beside ours, one module each (see peer_check.py)."""

from . import abc, acr, crest, darp, daso, simpro

#: peer name -> its module (``REPO``, ``METHOD``, ``argv(ours, out)``, ``run(ours, code, work)``)
PEERS = {
    "abc": abc,
    "acr": acr,
    "darp": darp.DARP,
    "fixmatch": darp.FIXMATCH,
    "fixmatch-joint": darp.FIXMATCH_JOINT,
    "daso": daso,
    "crest": crest,
    "simpro": simpro,
}
