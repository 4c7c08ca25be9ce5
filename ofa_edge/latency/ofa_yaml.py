"""Read the reference OFA latency lookup tables (``<r>_lookup_table.yaml``; only ``mean`` is used)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import yaml

from ofa_edge.errors import FileFormatError, OfaEdgeError
from ofa_edge.latency.table import MAX_MS, LatencyTable, Row
from ofa_edge.space import SearchSpace, Subnet

_KINDS = {"Conv": "stem", "expanded_conv": "mbconv", "Conv_1": "final_expand", "AvgPool2D": "pool",
          "Conv_2": "feature_mix", "Logits": "classifier"}
_FILE_RE = re.compile(r"^(\d+)_lookup_table\.ya?ml$")


def read_ofa_yaml(path: str | os.PathLike) -> LatencyTable:
    """One reference yaml table as a LatencyTable (median/mean/p90 all = the file's ``mean``)."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise FileFormatError(path, "OFA latency table not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FileFormatError(path, f"not a readable YAML file ({(str(exc) or type(exc).__name__).splitlines()[0]})") \
            from None
    except RecursionError:
        raise FileFormatError(path, "not a readable YAML file (nested too deeply)") from None
    if not isinstance(data, dict) or not data:
        raise FileFormatError(path, "an OFA latency table must be a non-empty mapping of key -> {mean: ms}")
    rows: dict[str, Row] = {}
    for key, entry in data.items():
        if not isinstance(key, str) or key.split("-", 1)[0] not in _KINDS:
            raise FileFormatError(path, f"key {key!r} is not an OFA MobileNetV3 LUT key "
                                        f"(starts with one of {', '.join(_KINDS)})")
        if not isinstance(entry, dict) or "mean" not in entry:
            raise FileFormatError(path, f"entry {key} has no 'mean' (ms)")
        mean = entry["mean"]
        if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not 0 <= mean <= MAX_MS:
            raise FileFormatError(path, f"entry {key}: mean {mean!r} is not a plausible latency in ms")
        count = entry.get("count", 1)
        var = entry.get("var", 0.0)
        std = math.sqrt(var) if isinstance(var, (int, float)) and 0 <= var <= MAX_MS ** 2 else 0.0
        repeats = count if isinstance(count, int) and not isinstance(count, bool) and count >= 1 else 1
        m = float(mean)
        rows[key] = Row(key, _KINDS[key.split("-", 1)[0]], m, m, m, std, m, repeats)
    return LatencyTable(rows, {"source": "ofa-yaml", "file": path.name}, path=str(path))


def read_ofa_yaml_dir(folder: str | os.PathLike) -> dict[int, LatencyTable]:
    """All ``<r>_lookup_table.yaml`` files of a folder, by resolution."""
    folder = Path(folder)
    tables = {int(m.group(1)): read_ofa_yaml(p) for p in sorted(folder.iterdir())
              if (m := _FILE_RE.match(p.name))} if folder.is_dir() else {}
    if not tables:
        raise OfaEdgeError(f"{folder}: no <r>_lookup_table.yaml files found")
    return tables


def predict_ofa(tables: dict[int, LatencyTable], space: SearchSpace, subnet: Subnet, n_classes: int = 1000) -> float:
    """Reference OFA prediction: the sum of ``mean`` over the subnet's keys in the table of its resolution."""
    if subnet.r not in tables:
        raise OfaEdgeError(f"no OFA latency table for resolution {subnet.r} (have {sorted(tables)})")
    return tables[subnet.r].raw(space, subnet, n_classes)[0]
