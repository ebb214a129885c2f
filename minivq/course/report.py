"""Grade rows (all or nothing per exercise), the table ``minivq course grade`` prints, the JSON and the CSV."""
import csv
import io
import json
import math
import re

from ..io.atomic import atomic_write_text
from .plugin import matches

__all__ = ["test_row", "plain_row", "resolve_needs", "total", "format_report", "write_report", "csv_text",
           "readable", "graded_files"]

_NOT_IMPLEMENTED = re.compile(r"NotImplementedError: exercise ([a-z][a-z0-9_]*):")


def _short_arrays(text):
    """``array([...])`` in place of every NumPy array repr of ``text``."""
    out, i = [], 0
    while True:
        j = text.find("array([", i)
        if j < 0:
            return "".join(out) + text[i:]
        depth, k = 0, j + 5
        while k < len(text):
            depth += {"(": 1, ")": -1}.get(text[k], 0)
            if depth == 0:
                break
            k += 1
        out.append(text[i:j] + "array([...])")
        i = k + 1


def readable(message, limit=160):
    """One line a student can read: long array reprs shortened, cut at ``limit`` characters."""
    text = " ".join(_short_arrays(str(message)).split())
    text = re.sub(r"EMAState\(n=array\(\[\.\.\.\]\), m=array\(\[\.\.\.\]\), E=array\(\[\.\.\.\]\)\)", "EMAState(...)",
                  text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def graded_files(root, patterns):
    """The files of ``patterns`` that exist under ``root``, sorted."""
    return sorted({p.split("::", 1)[0] for p in patterns if (root / p.split("::", 1)[0]).is_file()})


def plain_row(ex, status, reason, **more):
    """The row of an exercise that scores 0 without a test outcome (not run, timed out, crashed ...)."""
    row = {"name": ex.name, "kind": ex.kind, "points": ex.points, "score": 0, "passed": False, "status": status,
           "reason": reason, "method_ids": list(ex.method_ids), "path": ex.path, "tests": 0, "failed": [],
           "rel_error": None, "threshold": ex.threshold}
    row.update(more)
    return row


def _reason(ex, failed, missing):
    if missing:
        return "error", f"graded test not found: {missing[0]}"
    if not failed:
        return "passed", ""
    if any("compiled kernel not in use" in msg for _, msg in failed):
        return "failed", "the copy's compiled kernels are not built: pip install -e DIR, then grade again"
    named = [m.group(1) for _, msg in failed for m in [_NOT_IMPLEMENTED.search(msg)] if m]
    if ex.name in named:
        return "not_implemented", "not implemented"
    if named:
        return "blocked", f"needs exercise {named[0]} first"
    first = readable(failed[0][1], 200 if ex.kind == "bug" else 160)
    if ex.kind == "bug":  # a spot-the-bug exercise: say what to look for, then the first failure
        return "failed", readable(f"{ex.instruction}; {len(failed)} test(s) fail: {first}", 200)
    return "failed", readable(f"{len(failed)} test(s) fail: {first}", 160)


def test_row(ex, results, patterns):
    """The row of ``ex`` from the recorder's ``results`` for its graded test ``patterns``."""
    tests = results["tests"]
    rows, missing = [], []
    for pattern in patterns:
        hits = [nodeid for nodeid in tests if matches(nodeid, pattern)]
        file = pattern.split("::", 1)[0]
        errors = [msg for nodeid, msg in results["collect_errors"].items() if nodeid == file]
        if errors:
            rows.append((pattern, {"outcome": "failed", "message": f"cannot collect {file}: {errors[0]}"}))
        elif not hits:
            missing.append(pattern)
        rows += [(nodeid, tests[nodeid]) for nodeid in hits]
    failed = [(nodeid, t["message"] or t["outcome"]) for nodeid, t in rows if t["outcome"] != "passed"]
    passed = not failed and not missing and bool(rows)
    errors = [t["rel_error"] for _, t in rows if t.get("rel_error") is not None and math.isfinite(t["rel_error"])]
    status, reason = _reason(ex, failed, missing)
    if not passed and status == "passed":
        status, reason = "error", "no graded test ran"
    inputs = {nodeid: t["inputs"] for nodeid, t in rows if t.get("inputs") is not None}
    row = plain_row(ex, status, reason, score=ex.points if passed else 0, passed=passed, tests=len(rows),
                    failed=[{"test": n, "message": readable(m, 300)} for n, m in failed],
                    rel_error=max(errors) if errors else None)
    if inputs:
        row["inputs"] = inputs
    return row


def resolve_needs(rows, course):
    """Rows whose exercise failed (but is written) while an exercise it runs through failed too:
    "needs exercise X first", X the first in the registry's order."""
    by_name = {r["name"]: r for r in rows}
    for row in rows:
        if row["passed"] or row["status"] == "not_implemented":  # its own stub first
            continue
        failing = [n for n in course.requirements(row["name"]) if n in by_name and not by_name[n]["passed"]]
        if failing:
            if row["status"] != "blocked":
                row["own_reason"] = row["reason"]
            row["status"], row["reason"] = "blocked", f"needs exercise {failing[0]} first"
    return rows


def total(rows):
    """The total of ``rows``: score, points, passed, exercises."""
    return {"score": sum(r["score"] for r in rows), "points": sum(r["points"] for r in rows),
            "passed": sum(r["passed"] for r in rows), "exercises": len(rows)}


def _error_cell(row):
    if row["threshold"] is None:
        return "-"
    if row["rel_error"] is None:
        return "n/a"
    below = row["rel_error"] < row["threshold"]
    return f"{row['rel_error']:.1e} {'<' if below else '>='} {row['threshold']:.0e}"


def format_report(report):
    """The report as a table, one row per exercise, and the total line (and the self-check's note)."""
    head = f"{'exercise':<28} {'points':>6}  {'METHOD.md':<16} {'result':<6}  {'rel_error vs threshold':<22} note"
    lines = [head, "-" * len(head)]
    for r in report["exercises"]:
        result = "pass" if r["passed"] else "FAIL"
        lines.append(f"{r['name']:<28} {r['score']:>2}/{r['points']:<3}  {', '.join(r['method_ids']):<16} "
                     f"{result:<6}  {_error_cell(r):<22} {r['reason']}".rstrip())
    t = report["total"]
    lines.append(f"total: {t['score']}/{t['points']} points, {t['passed']}/{t['exercises']} exercises pass")
    if report.get("note"):
        lines.append(report["note"])
    return "\n".join(lines)


def write_report(report, path):
    """Write ``report`` as strict JSON to ``path`` (atomically)."""
    atomic_write_text(path, json.dumps(report, indent=1, allow_nan=False) + "\n")


def csv_text(reports, names):
    """One line per submission: its name, score, points, then each exercise's score and status."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "score", "points", "seed"] + [f"{n}" for n in names] + ["problems"])
    for report in reports:
        rows = {r["name"]: r for r in report["exercises"]}
        problems = "; ".join(f"{r['name']}: {r['reason']}" for r in report["exercises"]
                             if r["status"] not in ("passed", "failed", "not_implemented", "blocked"))
        writer.writerow([report["submission"], report["total"]["score"], report["total"]["points"],
                         report.get("seed", "")] + [rows[n]["score"] if n in rows else "" for n in names] + [problems])
    return out.getvalue()
