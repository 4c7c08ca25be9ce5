"""Reports from files on disk: the budgets table (from manifests) and the LUT predicted-vs-measured plot."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from ofa_edge.errors import MissingStepError, OfaEdgeError
from ofa_edge.export.manifest import MANIFEST_NAME, read_manifest


#: The demo's report file: the rows of its table and the summary lines under it.
REPORT_NAME = "report.json"


@dataclass(frozen=True)
class BuildRow:
    """One built target as the demo table shows it."""

    device: str
    budget_ms: float | None
    subnet_id: str
    subnet_short: str
    resolution: int
    macs: int
    params: int
    predicted_ms: float | None
    measured_ms: float | None
    predicted_top1: float | None
    top1_fp32: float | None
    top1_int8: float | None
    status: str
    folder: str
    files: tuple[str, ...]
    converter_logs: dict[str, int] | None = None  # {"files", "warnings", "errors"} of the build's logs/

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["files"] = list(self.files)
        return d


def _short(subnet: dict[str, Any]) -> str:
    from ofa_edge.space import Subnet

    n_stages = len(subnet["d"])
    return Subnet(ks=subnet["ks"], e=subnet["e"], d=subnet["d"], r=subnet["r"],
                  max_depth=len(subnet["ks"]) // n_stages).short()


def collect_rows(root: str | os.PathLike) -> list[BuildRow]:
    """Every ``manifest.json`` under ``root`` (a builds folder or a demo/run folder), sorted by budget."""
    root = Path(root)
    if not root.is_dir():
        raise OfaEdgeError(f"{root}: no such folder; pass a demo output, run or builds folder")
    rows = []
    for path in sorted(root.rglob(MANIFEST_NAME)):
        m = read_manifest(path.parent)
        top1, lat = m.top1 or {}, m.latency_ms or {}
        int8 = next((v for k, v in top1.items() if k.endswith("-int8") and isinstance(v, (int, float))), None)
        rows.append(BuildRow(
            device=str(m.extra.get("device", "")), budget_ms=m.extra.get("budget_ms"), subnet_id=m.subnet_id,
            subnet_short=_short(m.subnet), resolution=m.resolution, macs=m.macs, params=m.params,
            predicted_ms=lat.get("predicted"), measured_ms=lat.get("measured"),
            predicted_top1=top1.get("predicted"), top1_fp32=top1.get("fp32"), top1_int8=int8, status=m.status,
            folder=str(path.parent.relative_to(root)), files=tuple(f["path"] for f in m.files),
            converter_logs=_log_counts(m.artifacts)))
    if not rows:
        raise OfaEdgeError(f"{root}: holds no {MANIFEST_NAME}; run `ofa-edge specialize` or `ofa-edge demo` first")
    return sorted(rows, key=lambda r: (r.device, r.budget_ms if r.budget_ms is not None else 0.0))


def _log_counts(artifacts: list[dict[str, Any]]) -> dict[str, int] | None:
    """How many converter logs a build kept and the warnings and errors in them (None: no logs)."""
    logs = [a["log"] for a in artifacts if isinstance(a.get("log"), dict)]
    if not logs:
        return None
    return {"files": len(logs), "warnings": sum(int(g.get("warnings", 0)) for g in logs),
            "errors": sum(int(g.get("errors", 0)) for g in logs)}


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render_table(rows: list[BuildRow], title: str = "ofa-edge builds") -> Table:
    """The rich table: budget, chosen subnet, MACs, predicted/measured latency, fp32/int8 top-1."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("budget", "subnet", "r", "MMACs", "ms pred/meas", "% pred", "% fp32/int8"):
        table.add_column(col, justify="left" if col == "subnet" else "right", no_wrap=True, min_width=len(col))
    multi = len({r.device for r in rows}) > 1
    for r in rows:
        budget = f"{_f(r.budget_ms, 'g')} ms" + (f" {r.device}" if multi else "")
        table.add_row(budget, r.subnet_id, str(r.resolution), f"{r.macs / 1e6:.2f}",
                      f"{_f(r.predicted_ms, '.3f')}/{_f(r.measured_ms, '.3f')}", _f(r.predicted_top1, ".1f"),
                      f"{_f(r.top1_fp32, '.1f')}/{_f(r.top1_int8, '.1f')}")
    return table


def describe_rows(rows: list[BuildRow]) -> list[str]:
    """One line per build: its folder, its subnet, its files and its converter logs (what the table abbreviates)."""
    lines = []
    for r in rows:
        line = f"{r.folder}: {r.subnet_short} -> {', '.join(r.files)}"
        if r.converter_logs:
            g = r.converter_logs
            line += (f"; converter output in {r.folder}/logs/ ({g['files']} logs, {g['warnings']} warnings"
                     + (f", {g['errors']} errors" if g["errors"] else "") + ")")
        lines.append(line)
    return lines


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The lines the demo prints under its table: latency table, supernet, predictor and plots."""
    lines = []
    lut, pred = summary.get("lut_metrics") or {}, summary.get("predictor") or {}
    if lut:
        lines.append(f"latency table: {lut.get('n', 0)} held-out subnets, MAPE {lut.get('mape', 0):.2f} %, "
                     f"within ±10 % {lut.get('within_10pct', 0):.2f}, Kendall tau {lut.get('kendall_tau', 0):.2f}")
    if summary.get("supernet"):
        top1 = summary.get("max_top1", summary.get("max_val_top1"))  # max_val_top1: older demo summaries
        lines.append(f"supernet: {summary['supernet']}; max subnet {top1:.1f} % on the "
                     f"{summary.get('max_split', 'validation')} split")
    if pred:
        lines.append(f"accuracy predictor: {pred.get('rows', 0)} subnets, held-out RMSE {pred.get('rmse', 0):.2f} "
                     f"points, Kendall tau {pred.get('kendall_tau', 0):.2f}")
    if summary.get("plots"):
        lines.append(f"plots: {', '.join(summary['plots'])}  ({summary.get('seconds', 0):.0f} s)")
    return lines


def read_summary(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The demo's summary saved in ``<folder>/report.json`` (None: not a demo folder, or an older one)."""
    path = Path(folder) / REPORT_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary if isinstance(summary, dict) else None


def lut_scatter(validation_csv: str | os.PathLike, out_png: str | os.PathLike, title: str = "") -> Path:
    """Scatter of the table's predicted vs the measured latency of whole subnets (fit and held-out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ofa_edge.io import atomic_save
    from ofa_edge.latency import load_validation

    _, rows = load_validation(validation_csv)
    if not rows:
        raise MissingStepError(f"{validation_csv}: holds no measured subnets; profile with held-out validation "
                               "subnets first", "profile", {"validate": "N"})
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    for split, marker in (("fit", "o"), ("test", "^")):
        pts = [(r.measured_ms, r.predicted_ms) for r in rows if r.split == split]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, s=22, alpha=0.8, label=f"{split} ({len(pts)})")
    lo = min(min(r.measured_ms, r.predicted_ms) for r in rows)
    hi = max(max(r.measured_ms, r.predicted_ms) for r in rows)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.fill_between([lo, hi], [0.9 * lo, 0.9 * hi], [1.1 * lo, 1.1 * hi], color="grey", alpha=0.15, label="±10 %")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted by the latency table (ms)")
    ax.set_title(title or "latency table: predicted vs measured")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    atomic_save(out_png, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
    return out_png


def write_rows_json(rows: list[BuildRow], path: str | os.PathLike, summary: dict[str, Any] | None = None) -> Path:
    """Write the rows (and the demo's summary, which ``ofa-edge report`` reprints) as ``report.json``."""
    from ofa_edge.io import atomic_write_text

    path = Path(path)
    data: dict[str, Any] = {"format": "ofa-edge-report/1", "rows": [r.to_dict() for r in rows]}
    if summary is not None:
        data["summary"] = summary
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
