"""The operators' console (运维): the last hour and day at a glance, live workers, recent
failures (hashed user ids only). Charts are drawn server-side as SVG: no JS libraries."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, render_template

from triage import metrics
from triage.runtime import runtime
from triage.web.auth import login_required

bp = Blueprint("ops", __name__, url_prefix="/ops", template_folder="templates")


@bp.get("/")
@login_required("operate")
def console():
    from triage.web.app import readiness

    client = runtime.redis
    hour, day = metrics.series(client, 60), metrics.series(client, 24 * 60, step=60)
    charts = [
        ("最近1小时：每分钟消息数", _chart(hour, "messages")),
        ("最近1小时：消息→回复延迟 p50 / p95（秒）", _chart(hour, "p50", "p95")),
        ("最近1小时：队列长度", _chart(hour, "queue")),
        ("最近1小时：失败 / 兜底回复 / 红旗", _chart(hour, "failures", "fallbacks", "red_flags")),
        ("最近24小时：每小时消息数", _chart(day, "messages")),
        ("最近24小时：延迟 p95（秒）", _chart(day, "p95")),
    ]
    totals = {k: sum(p[k] for p in hour) for k in ("messages", "failures", "fallbacks", "red_flags")}
    checks, ready = readiness(current_app.config["TRIAGE_SETTINGS"])
    failures = [{**f, "at": time.strftime("%H:%M:%S", time.localtime(f["at"]))} for f in metrics.recent_failures(client)]
    return render_template("ops/console.html", charts=charts, totals=totals, checks=checks, ready=ready,
                           workers=_workers(), failures=failures, queue=client.llen("triage"))  # fmt: skip


def _workers() -> list[dict[str, Any]]:
    """Live status from Celery's inspect API (a 1-second broadcast)."""
    try:
        inspect = current_app.extensions["celery"].control.inspect(timeout=1.0)
        stats, active = inspect.stats() or {}, inspect.active() or {}
    except Exception as exc:  # the console must render even when the broker does not answer
        return [{"name": "（无法查询）", "error": type(exc).__name__}]
    return [{"name": name, "processes": len((s.get("pool") or {}).get("processes", [])),
             "active": len(active.get(name, [])), "total": sum((s.get("total") or {}).values())}
            for name, s in sorted(stats.items())]  # fmt: skip


def _chart(points: list[dict[str, Any]], *keys: str, width: int = 520, height: int = 120) -> dict[str, Any]:
    """Polylines for an SVG chart; missing values (no traffic) leave gaps at zero."""
    values = [[p[k] or 0 for p in points] for k in keys]
    top = max([max(v) for v in values] + [1e-9])
    step = width / max(1, len(points) - 1)
    lines = [" ".join(f"{i * step:.1f},{height - (y / top) * (height - 10):.1f}" for i, y in enumerate(v))
             for v in values]  # fmt: skip
    return {"lines": list(zip(keys, lines, strict=True)), "top": round(top, 3), "width": width, "height": height,
            "last": {k: v[-1] for k, v in zip(keys, values, strict=True)}}  # fmt: skip
