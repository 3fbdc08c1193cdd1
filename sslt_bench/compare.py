"""Paired comparisons between two methods, seed by seed, and pseudo-label trajectories.

The alternate-sampling paper's central claim (Table 1: alternate sampling beats Decoupling,
above all on few-shot classes) and its Table 3 (pseudo-label accuracy on U rises across
loops) are statements about pairs of runs and about one run's history. With a handful of CPU
seeds a difference of a point or two is only readable paired: the same split, the same
training seed, two methods. :func:`paired_markdown` renders that from result records, and
never pairs runs that differ in data set, data parameters, split, profile or backbone. When
several settings are shown, each header names the settings in which it differs from the others.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from .table import _params_key, is_ok

METRICS = ("overall", "few")


def _setting(rec: dict[str, Any]) -> tuple:
    return (rec["dataset"], _params_key(rec), rec["profile"], rec["backbone"], rec["split_hash"])


#: Data parameters every header names (:func:`_label`); other differences are added to it.
LABELLED = ("imbalance_ratio",)


def _label(rec: dict[str, Any]) -> str:
    params = rec.get("data_params") or {}
    shown = ", ".join(f"{k}={params[k]}" for k in LABELLED if k in params)
    where = f"{rec['dataset']} ({shown})" if shown else rec["dataset"]
    return f"{where}, profile {rec['profile']}, {rec['backbone']}, split {rec['split_hash'][:8]}"


def _settings_of(rec: dict[str, Any]) -> dict[str, str]:
    """A run's data parameters and method config as ``key -> value`` strings."""
    out = {f"{k}": str(v) for k, v in (rec.get("data_params") or {}).items()}
    out.update(
        {f"{rec['method']}.{k}": str(v) for k, v in (rec.get("method_config") or {}).items()}
    )
    return out


def _differences(blocks: list[list[dict[str, Any]]]) -> list[str]:
    """Per block of records, the settings in which the blocks differ (``erm.lr=0.05``)."""
    settings = [{k: v for r in recs for k, v in _settings_of(r).items()} for recs in blocks]
    keys = sorted({k for s in settings for k in s})
    differ = [k for k in keys if k not in LABELLED and len({s.get(k) for s in settings}) > 1]
    return [", ".join(f"{k}={s.get(k, '-')}" for k in differ) for s in settings]


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:+.1f}"
    return f"{statistics.mean(values):+.1f} ± {statistics.stdev(values):.1f}"


def pairs(
    records: list[dict[str, Any]], method: str, baseline: str
) -> dict[tuple, list[tuple[dict, dict]]]:
    """(method run, baseline run) pairs with equal seed, grouped by setting and configs."""
    by_seed: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for rec in records:
        if is_ok(rec) and rec["method"] in (method, baseline):
            key = (*_setting(rec), rec["method"], rec.get("config_hash"))
            by_seed[key][rec["method"]][rec["seed"]] = rec
    out: dict[tuple, list[tuple[dict, dict]]] = {}
    for key_a, runs_a in by_seed.items():
        if key_a[-2] != method:
            continue
        for key_b, runs_b in by_seed.items():
            if key_b[-2] != baseline or key_b[:-2] != key_a[:-2]:
                continue
            a, b = runs_a[method], runs_b[baseline]
            seeds = sorted(set(a) & set(b))
            if seeds:
                out[(*key_a, key_b[-1])] = [(a[s], b[s]) for s in seeds]
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


def paired_markdown(records: list[dict[str, Any]], method: str, baseline: str) -> str:
    """Markdown: per seed, both methods' overall and few-shot accuracy and the difference."""
    parts = []
    found = list(pairs(records, method, baseline).values())
    diffs_of = _differences([[runs[0][0], runs[0][1]] for runs in found])
    for runs, differ in zip(found, diffs_of, strict=True):
        head = ["seed"]
        for m in METRICS:
            head += [f"{method} {m}", f"{baseline} {m}", f"Δ {m}"]
        lines = ["| " + " | ".join([*head, "threads"]) + " |", "|" + "---|" * (len(head) + 1)]
        diffs: dict[str, list[float]] = {m: [] for m in METRICS}
        for a, b in runs:
            cells = [str(a["seed"])]
            for m in METRICS:
                va, vb = a["metrics"][m], b["metrics"][m]
                diffs[m].append(va - vb)
                cells += [f"{va:.1f}", f"{vb:.1f}", f"{va - vb:+.1f}"]
            cells.append(f"{a.get('threads', '?')} / {b.get('threads', '?')}")
            lines.append("| " + " | ".join(cells) + " |")
        summary = ["mean"]
        for m in METRICS:
            ma = statistics.mean(a["metrics"][m] for a, _ in runs)
            mb = statistics.mean(b["metrics"][m] for _, b in runs)
            summary += [f"{ma:.1f}", f"{mb:.1f}", _mean_std(diffs[m])]
        lines.append("| " + " | ".join([*summary, ""]) + " |")
        wins = "; ".join(
            f"{m}: {method} ahead on {sum(d > 0 for d in diffs[m])} of {len(runs)} seeds"
            for m in METRICS
        )
        differ = f"; {differ}" if differ else ""
        head = f"{method} vs {baseline}, {_label(runs[0][0])}{differ}"
        parts.append(f"{head}\n\n" + "\n".join(lines))
        parts.append(f"Paired by training seed ({wins}); Δ is mean ± std over seeds.")
    if not parts:
        return f"No seed has a finished run of both {method} and {baseline} in one setting."
    return "\n\n".join(parts)


HISTORIES = {
    "pseudo_labels": ("pseudo-label accuracy on U", "labelling step"),
    "evals": ("test accuracy after each stage", "evaluation"),
}


def trajectory_markdown(
    records: list[dict[str, Any]], method: str, history: str = "pseudo_labels", metric: str = "few"
) -> str:
    """Markdown: ``metric`` at every entry of a run's ``history`` list, one row per seed.

    Args:
        records: result records (any mix; only ``method``'s finished runs are used).
        method: the method whose runs to show.
        history: ``pseudo_labels`` (accuracy of the pseudo labels on U, from U's hidden
            labels) or ``evals`` (diagnostic test evaluations after stages).
        metric: ``overall``, ``many``, ``medium`` or ``few``.
    """
    what, entry = HISTORIES[history]
    parts = []
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for rec in records:
        if is_ok(rec) and rec["method"] == method and rec["history"].get(history):
            groups[(*_setting(rec), rec.get("config_hash"))].append(rec)
    ordered = [recs for _key, recs in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    for recs, differ in zip(ordered, _differences(ordered), strict=True):
        recs.sort(key=lambda r: r["seed"])
        steps = [e["step"] for e in recs[0]["history"][history]]
        lines = ["| seed | " + " | ".join(steps) + " |", "|" + "---|" * (len(steps) + 1)]
        rising = 0
        for rec in recs:
            got = {e["step"]: e[metric] for e in rec["history"][history]}
            lines.append(
                f"| {rec['seed']} | "
                + " | ".join(f"{got[s]:.1f}" if s in got else "-" for s in steps)
                + " |"
            )
            vals = [got[s] for s in steps if s in got]
            rising += all(y > x for x, y in zip(vals, vals[1:], strict=False))
        parts.append(
            f"{method}: {metric} {what} (%), {_label(recs[0])}{'; ' + differ if differ else ''}\n\n"
            + "\n".join(lines)
            + f"\n\nRising at every {entry} in {rising} of {len(recs)} runs."
        )
    return "\n\n".join(parts) if parts else f"No {method} run recorded {what}."
