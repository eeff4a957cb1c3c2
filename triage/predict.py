"""Single-turn batch prediction (``triage predict``) and its scoring (``make eval``).

Rows are split across processes, each with its own engine and model
(``n_threads=1``), and written back in input order.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from triage.config import Settings

_engine = None
_use_model = True


def _init_worker(settings_json: str, use_model: bool) -> None:
    global _engine, _use_model
    from triage.services import build_engine, build_model

    settings = Settings.model_validate_json(settings_json)
    model = build_model(settings) if use_model else None
    _engine = build_engine(settings, model=model)
    _use_model = use_model


def _predict_row(row: dict[str, Any]) -> dict[str, Any]:
    assert _engine is not None
    started = time.perf_counter()
    sex = row.get("sex") if row.get("sex") in ("男", "女") else None
    age = row.get("age") if isinstance(row.get("age"), (int, float)) else None
    result = _engine.triage(str(row.get("text") or ""), age_years=age, sex=sex, use_model=_use_model)
    out = result.as_prediction(row.get("id"))
    out["_seconds"] = time.perf_counter() - started
    return out


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def predict_file(
    settings: Settings, inp: Path, out: Path, use_model: bool = True, processes: int | None = None
) -> dict[str, float]:
    from tqdm import tqdm

    rows = list(read_rows(inp))
    processes = processes or min(os.cpu_count() or 1, 2)
    # Build the shared embedding cache once, before the workers start, so they never race to make it.
    _init_worker(settings.model_dump_json(), use_model=False)
    started = time.perf_counter()
    seconds = 0.0
    out.parent.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")  # llama.cpp state must never be forked
    with open(out, "w", encoding="utf-8") as f, ctx.Pool(
        processes, initializer=_init_worker, initargs=(settings.model_dump_json(), use_model)
    ) as pool:
        for pred in tqdm(pool.imap(_predict_row, rows, chunksize=8), total=len(rows), desc="predict", unit="q"):
            seconds += pred.pop("_seconds")
            f.write(json.dumps(pred, ensure_ascii=False) + "\n")
    wall = time.perf_counter() - started
    n = max(1, len(rows))
    return {"rows": len(rows), "wall_seconds": round(wall, 2), "seconds_per_question": round(wall / n, 4),
            "cpu_seconds_per_question": round(seconds / n, 4), "processes": processes}  # fmt: skip


def score(gold_path: Path, pred_path: Path, k_values: tuple[int, ...] = (1, 3)) -> dict[str, float]:
    gold = {r["id"]: r for r in read_rows(gold_path)}
    preds = {r["id"]: r for r in read_rows(pred_path)}
    hits = Counter()
    covered = 0
    tp, fp, fn = Counter(), Counter(), Counter()
    for row_id, g in gold.items():
        accept = set(g["accept"])
        canon = [d["canonical"] for d in preds.get(row_id, {}).get("departments", [])]
        if canon:
            covered += 1
        for k in k_values:
            hits[k] += bool(accept & set(canon[:k]))
        # Macro-F1 over single-label rows: a prediction counts as right when accepted.
        top = canon[0] if canon else None
        if len(accept) == 1:
            (label,) = accept
            if top == label:
                tp[label] += 1
            else:
                fn[label] += 1
                if top:
                    fp[top] += 1
    n = max(1, len(gold))
    labels = set(tp) | set(fn)
    f1s = []
    for label in labels:
        p = tp[label] / max(1, tp[label] + fp[label])
        r = tp[label] / max(1, tp[label] + fn[label])
        f1s.append(0 if p + r == 0 else 2 * p * r / (p + r))
    result = {f"top{k}": round(hits[k] / n, 4) for k in k_values}
    result["macro_f1"] = round(sum(f1s) / max(1, len(f1s)), 4)
    result["coverage"] = round(covered / n, 4)
    result["rows"] = len(gold)
    return result
