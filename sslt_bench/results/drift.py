"""Profile drift: has a record's profile changed since the record was made?

A record names its profile (``quick``) and stores the method config it ran. Profiles change
(the FixMatch family's quick budget went from 700 to 2,100 steps), and a board that labels an
old record with today's profile name tells its reader the wrong budget. :func:`profile_drift`
rebuilds the config the record's run would get today (its profile, its data set's hints and
its ``--set`` values, by :func:`sslt_bench.config.method_config`, as the runner does) and
returns the fields whose recorded value differs. Fields the record lacks (added to the config
after the record was made) are not compared: the record cannot say what its run did there
(its git revision can).
"""

from __future__ import annotations

import json
from typing import Any

from ..config import method_config, split_overrides, to_dict

#: The word a board puts before the recorded values of a drifted row (``old quick: epochs=7``).
OLD = "old"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def current_config(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The method config ``rec``'s run would get today, or ``None`` if it cannot be rebuilt.

    ``None``: a method or data set not registered here, or a profile or setting that no longer
    exists.
    """
    from ..registry import DATASETS, METHODS

    try:
        cls = METHODS.get(rec["method"]).Config
        builder = DATASETS.get(rec["dataset"])
        groups = {"method": cls, "data": builder.Params}
        routed = split_overrides(list(rec.get("overrides") or ()), groups)
        hints = getattr(builder, "hints", {}).get(rec["profile"])
        return to_dict(method_config(cls, rec["profile"], hints, routed["method"]))
    except Exception:  # foreign or outdated record: nothing to compare against
        return None


def profile_drift(
    rec: dict[str, Any], now: dict[str, Any] | None = None
) -> dict[str, tuple[Any, Any]]:
    """Method config fields of ``rec`` whose recorded value its profile no longer gives.

    Args:
        rec: a result record (``method``, ``dataset``, ``profile``, ``overrides``,
            ``method_config``).
        now: ``current_config(rec)`` when the caller has it already.

    Returns:
        field -> (recorded value, value the profile gives now), sorted by field; empty when
        nothing drifted or when the record cannot be rebuilt (:func:`current_config`).
    """
    now = now if now is not None else current_config(rec)
    if now is None:
        return {}
    recorded = rec.get("method_config") or {}
    return {
        k: (recorded[k], now[k])
        for k in sorted(recorded)
        if k in now and not _same(recorded[k], now[k])
    }


def drift_words(profile: str, drift: dict[str, tuple[Any, Any]]) -> list[str]:
    """A row label's words for a :func:`profile_drift` result: ``["old quick: epochs=7"]``."""
    if not drift:
        return []
    values = ", ".join(f"{k}={old}" for k, (old, _) in drift.items())
    return [f"{OLD} {profile}: {values}"]
