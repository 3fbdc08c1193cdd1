"""Paired comparisons between two methods, seed by seed, and pseudo-label trajectories.

The alternate-sampling paper's central claim (Table 1: alternate sampling beats Decoupling,
above all on few-shot classes) and its Table 3 (pseudo-label accuracy on U rises across
loops) are statements about pairs of runs and about one run's history. With a handful of CPU
seeds a difference of a point or two is only readable paired: the same split, the same
training seed, two methods. :func:`paired_markdown` renders that from result records, and
never pairs runs that differ in data set, data parameters, split, profile or backbone. When
several settings are shown, each header names the settings in which it differs from the others.

Same seed is not proof of same initialisation (a thread count or a resume can change the
bits). Records carry ``init_hash`` (the weights before the first step) and, per training step,
the weights' hash after it with a digest of the plan up to it (``init_hashes``, ``init_plans``).
:func:`init_status` reads them: a pair whose initial weights differ, or whose weights differ
after a step where both plans agree so far (e.g. alternate's and decoupling's shared
Decoupling initialisation), is marked ``differs`` and left out of the mean and Δ; a record
written before these fields existed gives ``unknown`` (shown, never called same-init).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from ..errors import UsageError
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


def init_status(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, bool]:
    """Whether two paired runs started from the same weights: (text, excluded).

    ``same``; ``same to <step>`` when the plans agree up to a training step and the weights
    after it are bit-identical too (a shared initialisation); ``differs`` (initial weights)
    or ``differs after <step>`` (excluded); ``unknown`` when a record lacks the hashes.
    """
    ha, hb = a.get("init_hashes") or {}, b.get("init_hashes") or {}
    if "init" not in ha or "init" not in hb:
        return "unknown", False
    if ha["init"] != hb["init"]:
        return "differs", True
    pa, pb = a.get("init_plans") or {}, b.get("init_plans") or {}
    shared = [k for k in pa if pb.get(k) == pa[k] and k in ha and k in hb]
    bad = [k for k in shared if ha[k] != hb[k]]
    if bad:
        return f"differs {bad[0].replace(':', ' ')}", True
    return (f"same to {shared[-1].split(':', 1)[1]}" if shared else "same"), False


def memory_format(rec: dict[str, Any]) -> str:
    """The memory format a run trained in: ``CL`` (channels_last) or ``NCHW``.

    Records without the field ran the default of their time: NCHW on CPU, channels_last on CUDA.
    """
    cl = rec.get("channels_last")
    if cl is None:
        cl = rec.get("device") == "cuda"
    return "CL" if cl else "NCHW"


def _setup_cell(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Threads of both runs, and their memory formats where these differ (floats differ)."""
    cell = f"{a.get('threads', '?')} / {b.get('threads', '?')}"
    fa, fb = memory_format(a), memory_format(b)
    return cell if fa == fb else f"{cell} ({fa} / {fb})"


def parse_selector(text: str) -> tuple[str, dict[str, str]]:
    """``alternate[recipe=released,loops=5]`` -> (``alternate``, {recipe: released, loops: 5}).

    A bare name selects every configuration of the method; ``key=value`` pairs keep the runs
    whose method config has that value (compared as text, so ``True``/``5``/``0.1`` as stored).

    Raises:
        UsageError: a malformed selector (the message shows the expected form).
    """
    name, bracket, rest = text.partition("[")
    if not bracket:
        return text, {}
    if not rest.endswith("]") or not name:
        raise UsageError(f"bad method selector {text!r}; expected NAME or NAME[key=value,...]")
    want = {}
    for item in filter(None, rest[:-1].split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"bad method selector {text!r}; expected NAME[key=value,...]")
        want[key.strip()] = value.strip()
    return name, want


def selected(rec: dict[str, Any], selector: str) -> bool:
    """Whether ``rec`` is a run of the method (and configuration) ``selector`` names."""
    name, want = parse_selector(selector)
    config = rec.get("method_config") or {}
    return rec["method"] == name and all(str(config.get(k)) == v for k, v in want.items())


def pairs(
    records: list[dict[str, Any]], method: str, baseline: str
) -> dict[tuple, list[tuple[dict, dict]]]:
    """(method run, baseline run) pairs with equal seed, grouped by setting and configs.

    ``method`` and ``baseline`` are names or selectors (:func:`parse_selector`); two
    configurations of one method can be paired (``alternate[recipe=released]`` vs
    ``alternate[recipe=paper]``), a run never with itself.
    """

    def groups(selector: str) -> dict[tuple, dict[int, dict]]:
        out: dict[tuple, dict[int, dict]] = defaultdict(dict)
        for rec in records:
            if is_ok(rec) and selected(rec, selector):
                out[(*_setting(rec), rec["method"], rec.get("config_hash"))][rec["seed"]] = rec
        return out

    found: dict[tuple, list[tuple[dict, dict]]] = {}
    for key_a, a in groups(method).items():
        for key_b, b in groups(baseline).items():
            if key_b[:-2] != key_a[:-2] or key_a[-2:] == key_b[-2:]:
                continue
            seeds = sorted(set(a) & set(b))
            if seeds:
                found[(*key_a, key_b[-1])] = [(a[s], b[s]) for s in seeds]
    return dict(sorted(found.items(), key=lambda kv: str(kv[0])))


def paired_markdown(records: list[dict[str, Any]], method: str, baseline: str) -> str:
    """Markdown: per seed, both methods' overall and few-shot accuracy and the difference."""
    parts = []
    found = list(pairs(records, method, baseline).values())
    diffs_of = _differences([[runs[0][0], runs[0][1]] for runs in found])
    for runs, differ in zip(found, diffs_of, strict=True):
        head = ["seed"]
        for m in METRICS:
            head += [f"{method} {m}", f"{baseline} {m}", f"Δ {m}"]
        lines = [
            "| " + " | ".join([*head, "threads", "init"]) + " |",
            "|" + "---|" * (len(head) + 2),
        ]
        status = [init_status(a, b) for a, b in runs]
        kept = [run for run, (_, out) in zip(runs, status, strict=True) if not out]
        for (a, b), (init, out) in zip(runs, status, strict=True):
            cells = [str(a["seed"])]
            for m in METRICS:
                va, vb = a["metrics"][m], b["metrics"][m]
                cells += [f"{va:.1f}", f"{vb:.1f}", f"{va - vb:+.1f}"]
            cells.append(_setup_cell(a, b))
            cells.append(f"{init} (excluded)" if out else init)
            lines.append("| " + " | ".join(cells) + " |")
        differ = f"; {differ}" if differ else ""
        head = f"{method} vs {baseline}, {_label(runs[0][0])}{differ}"
        parts.append(f"{head}\n\n" + "\n".join(_summary(lines, kept)))
        formats = sum(memory_format(a) != memory_format(b) for a, b in runs)
        parts.append(_footer(method, kept, [s for s, _ in status], formats))
    if not parts:
        return f"No seed has a finished run of both {method} and {baseline} in one setting."
    return "\n\n".join(parts)


def _summary(lines: list[str], kept: list[tuple[dict, dict]]) -> list[str]:
    """The table's lines plus a mean row over the pairs ``kept`` (none: no mean row)."""
    if not kept:
        return lines
    summary = ["mean"]
    for m in METRICS:
        ma = statistics.mean(a["metrics"][m] for a, _ in kept)
        mb = statistics.mean(b["metrics"][m] for _, b in kept)
        summary += [
            f"{ma:.1f}",
            f"{mb:.1f}",
            _mean_std([a["metrics"][m] - b["metrics"][m] for a, b in kept]),
        ]
    return [*lines, "| " + " | ".join([*summary, "", ""]) + " |"]


def _footer(method: str, kept: list[tuple[dict, dict]], status: list[str], formats: int = 0) -> str:
    """What the mean row rests on: wins per metric, the pairs' initialisations and formats."""
    unknown = sum(s == "unknown" for s in status)
    differ = sum(s.startswith("differs") for s in status)
    notes = []
    if unknown:
        notes.append(
            f"init unknown for {unknown} of {len(status)} pairs (records without init_hash)"
        )
    if differ:
        notes.append(f"{differ} pairs whose inits differ excluded from the mean and Δ")
    if formats:
        notes.append(
            f"{formats} of {len(status)} pairs ran in different memory formats (same init, "
            "floats apart from the first step)"
        )
    note = "; " + "; ".join(notes) if notes else ""
    if not kept:
        return f"No same-init pair: no mean or Δ{note}."
    wins = "; ".join(
        f"{m}: {method} ahead on "
        f"{sum(a['metrics'][m] > b['metrics'][m] for a, b in kept)} of {len(kept)} seeds"
        for m in METRICS
    )
    return f"Paired by training seed ({wins}); Δ is mean ± std over seeds{note}."


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
        if is_ok(rec) and selected(rec, method) and rec["history"].get(history):
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
