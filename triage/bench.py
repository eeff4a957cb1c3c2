"""``make bench``: measured, not asserted. Starts its own stacks on free ports.

- webhook acknowledgement latency for N signed, encrypted pushes at a fixed
  concurrency, and at a fixed arrival rate (nothing consumes the queue, so only
  the web path is measured; the load comes from this process, the server is gunicorn);
- message → reply latency through the worker and model for 1, 2 and 4 patients at
  once, and for red-flag messages on their own;
- worker memory (RSS), model tokens per second, retrieval time per query;
- throughput with one and with two worker processes.
"""

from __future__ import annotations

import http.client
import platform
import secrets
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import redis
import requests

from triage.config import Settings
from triage.stack import Stack, pick_ports
from triage.wechat.crypto import PushCrypto
from triage.wechat.pusher import build_push, message_fields, push, wait_for_replies

COMPLAINTS = [
    "孩子发烧三天，咳嗽有痰", "最近老是拉肚子，一天好几次", "牙龈出血，刷牙的时候特别明显", "眼睛看东西模糊，有重影",
    "膝盖疼，上下楼梯更厉害", "月经推迟了十几天", "晚上睡不着，心情低落", "脸上长了很多痘痘", "耳鸣，听力下降",
    "尿频尿急，排尿疼", "头晕头疼，血压有点高", "胃胀反酸，吃完饭更明显", "腰疼，腿发麻", "皮肤起红疹子很痒",
    "嗓子疼，吞咽时更疼", "甲状腺结节4类", "乳房有硬块", "痔疮出血", "咳嗽两周了，有黄痰", "手抖，心慌，体重下降",
]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(values, 50) * 1000, 2), "p95_ms": round(percentile(values, 95) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2), "mean_ms": round(statistics.mean(values) * 1000, 2),
            "n": len(values)}  # fmt: skip


class _Poster:
    """A lean keep-alive HTTP client, one connection per thread: the load comes from the same
    2 cores as the server, so the client must cost as little as it can (requests costs about
    a millisecond of CPU per call, which would be taken from the server being measured)."""

    def __init__(self, base_url: str) -> None:
        parsed = urlsplit(base_url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._local = threading.local()

    def post(self, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]) -> int:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("POST", f"{path}?{urlencode(query)}", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            return 0


def bench_ack(stack: Stack, crypto: PushCrypto, pushes: int, concurrency: int) -> dict:
    bodies = [build_push(crypto, message_fields("o_bench_" + secrets.token_hex(4), "头疼两天")) for _ in range(pushes)]
    poster = _Poster(stack.web_url)

    def send(item) -> tuple[float, int]:
        body, query, headers = item
        started = time.perf_counter()
        status = poster.post("/wechat/push", query, body, headers)
        return time.perf_counter() - started, status

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(send, bodies))
    wall = time.perf_counter() - started
    latencies = [r[0] for r in results]
    return {**_ms(latencies), "concurrency": concurrency, "pushes_per_s": round(pushes / wall, 1),
            "non_200": sum(1 for r in results if r[1] != 200)}  # fmt: skip


def bench_reply(stack: Stack, crypto: PushCrypto, complaints: int) -> dict:
    latencies, departments = [], []
    for i in range(complaints):
        openid = "o_bench_reply_" + secrets.token_hex(4)
        push(stack.web_url, crypto, message_fields(openid, "同意"))  # consent is not what we time
        wait_for_replies(stack.fake_url, openid, 1, timeout=60)
        started = time.perf_counter()
        push(stack.web_url, crypto, message_fields(openid, COMPLAINTS[i % len(COMPLAINTS)]))
        found = wait_for_replies(stack.fake_url, openid, 2, timeout=60)
        latencies.append(time.perf_counter() - started)
        if len(found) > 1:
            content = found[1]["text"]["content"]
            departments.append(content.split("建议科室：")[-1].split("\n")[0] if "建议科室：" in content else "?")
    return {**_ms(latencies), "sequential": True, "departments": departments}


RED_FLAGS = ["我爸突然胸口剧痛，满头大汗", "我妈突然嘴歪了，说话也不清楚", "孩子误吃了一瓶药", "我不想活了，想结束这一切",
             "吐了好多血，头晕"]  # fmt: skip


def bench_ack_rate(stack: Stack, crypto: PushCrypto, rate: float, seconds: float) -> dict:
    """Open-loop load: pushes are sent on a fixed schedule, whether or not earlier ones returned."""
    count = int(rate * seconds)
    bodies = [build_push(crypto, message_fields("o_rate_" + secrets.token_hex(4), "头疼两天")) for _ in range(count)]
    poster = _Poster(stack.web_url)

    def send(i: int) -> tuple[float, int]:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        body, query, headers = bodies[i]
        began = time.perf_counter()
        status = poster.post("/wechat/push", query, body, headers)
        return time.perf_counter() - began, status

    start = time.perf_counter() + 0.2
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(send, range(count)))
    wall = time.perf_counter() - start
    return {**_ms([r[0] for r in results]), "target_per_s": rate, "achieved_per_s": round(count / wall, 1),
            "non_200": sum(1 for r in results if r[1] != 200)}  # fmt: skip


def _consented_user(stack: Stack, settings: Settings) -> str:
    from triage.privacy import user_ref
    from triage.sessions import SessionStore

    openid = "o_bench_" + secrets.token_hex(5)
    SessionStore(redis.Redis.from_url(stack.redis_url)).grant_consent(user_ref(openid, settings.secret_key), "bench")
    return openid


def bench_patients(stack: Stack, crypto: PushCrypto, settings: Settings, patients: int, each: int,
                   texts: list[str]) -> dict:  # fmt: skip
    """``patients`` at once, each sending ``each`` complaints one after the other. For each: the
    first reply (a follow-up question or an answer), then "直接推荐" and the recommendation (model)."""

    def patient(p: int) -> tuple[list[float], list[float]]:
        openid, first, answer, seen = _consented_user(stack, settings), [], [], 0
        for i in range(each):
            for text, times in ((texts[(p * each + i) % len(texts)], first), ("直接推荐", answer)):
                began = time.perf_counter()
                push(stack.web_url, crypto, message_fields(openid, text))
                seen += 1
                wait_for_replies(stack.fake_url, openid, seen, timeout=120)
                times.append(time.perf_counter() - began)
            push(stack.web_url, crypto, message_fields(openid, "重新开始"))
            seen += 1
            wait_for_replies(stack.fake_url, openid, seen, timeout=120)
        return first, answer

    started = time.perf_counter()
    with ThreadPoolExecutor(patients) as pool:
        done = list(pool.map(patient, range(patients)))
    wall = time.perf_counter() - started
    first = [t for f, _ in done for t in f]
    answer = [t for _, a in done for t in a]
    return {"patients": patients, "first_reply": _ms(first), "recommendation": _ms(answer),
            "messages_per_s": round(3 * len(first) / wall, 2)}  # fmt: skip


def _worker_facts(stack: Stack) -> dict:
    import json
    import re

    client = redis.Redis.from_url(stack.redis_url)
    pids = [json.loads(v)["pid"] for v in client.mget(list(client.scan_iter("triage:worker:*"))) if v]
    rss = []
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        rss.append(int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024)
    metrics = requests.get(f"{stack.web_url}/metrics", timeout=10).text

    def total(name: str) -> float:
        return sum(float(m) for m in re.findall(rf"^{name} ([0-9.e+-]+)$", metrics, re.M))

    def hist(stage: str) -> float | None:
        n = total(f'triage_stage_seconds_count{{stage="{stage}"}}')
        return round(total(f'triage_stage_seconds_sum{{stage="{stage}"}}') / n * 1000, 2) if n else None

    tokens, seconds = total("triage_model_tokens_total"), total("triage_model_seconds_total")
    return {"worker_rss_mb": [round(r) for r in rss], "model_tokens_per_s": round(tokens / seconds, 1) if seconds else None,
            "mean_ms_per_stage": {s: hist(s) for s in ("red_flags", "retrieve", "model")}}  # fmt: skip


def run_bench(settings: Settings, pushes: int = 1000, concurrency: int = 8, complaints: int = 20) -> dict:
    crypto = PushCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    results: dict = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}}

    logs = settings.instance_dir / "bench-logs"
    ack_stack = pick_ports(Stack(settings, persistent=False, log_dir=logs))
    ack_stack.start(worker=False)
    try:
        results["webhook_ack"] = bench_ack(ack_stack, crypto, pushes, concurrency)
        redis.Redis.from_url(ack_stack.redis_url).flushdb()
        results["webhook_ack_at_500_per_s"] = bench_ack_rate(ack_stack, crypto, rate=500, seconds=4)
        redis.Redis.from_url(ack_stack.redis_url).flushdb()
    finally:
        ack_stack.stop()

    for workers in (1, 2):
        stack = pick_ports(Stack(settings, persistent=False, log_dir=logs, worker_concurrency=workers))
        stack.start(wait=300)
        try:
            bench_reply(stack, crypto, 2)  # warm-up: first-call costs are not what a patient sees
            if workers == 1:
                results["message_to_reply"] = bench_reply(stack, crypto, complaints)
                results["red_flag_to_reply"] = bench_patients(stack, crypto, settings, 1, 5, RED_FLAGS)
                results["patients_at_once"] = {str(n): bench_patients(stack, crypto, settings, n, max(2, 8 // n), COMPLAINTS)
                                               for n in (1, 2, 4)}  # fmt: skip
                results["worker"] = _worker_facts(stack)
            results.setdefault("throughput_messages_per_s", {})[f"{workers}_worker"] = bench_patients(
                stack, crypto, settings, 4, 4, COMPLAINTS)["messages_per_s"]
        finally:
            stack.stop()
    return results


def write_report(results: dict, directory: Path) -> Path:
    """A short Markdown report with an SVG chart of latency against concurrent patients."""
    patients = results["patients_at_once"]
    rows = [(n, v["recommendation"]["p50_ms"], v["recommendation"]["p95_ms"]) for n, v in patients.items()]
    top = max(p95 for _, _, p95 in rows) * 1.15
    bars = []
    for i, (n, p50, p95) in enumerate(rows):
        x = 60 + i * 110
        for j, (value, colour) in enumerate(((p50, "#1a5fb4"), (p95, "#c01c28"))):
            h = value / top * 180
            bars.append(f'<rect x="{x + j * 38}" y="{200 - h:.0f}" width="34" height="{h:.0f}" fill="{colour}"/>'
                        f'<text x="{x + j * 38 + 17}" y="{195 - h:.0f}" font-size="11" text-anchor="middle">{value:.0f}</text>')
        bars.append(f'<text x="{x + 36}" y="218" font-size="12" text-anchor="middle">{n} patient(s)</text>')
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="420" height="240" font-family="sans-serif">'
           '<text x="10" y="16" font-size="13">recommendation latency, ms (blue p50, red p95), one worker</text>'
           + "".join(bars) + '<line x1="50" y1="200" x2="400" y2="200" stroke="#333"/></svg>')  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latency.svg").write_text(svg, encoding="utf-8")
    ack, rate = results["webhook_ack"], results["webhook_ack_at_500_per_s"]
    worker = results["worker"]
    lines = [
        "# make bench report", "", f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}.", "",
        "| measurement | p50 | p95 | p99 | other |", "|---|---|---|---|---|",
        f"| webhook ack, closed loop ×{ack['concurrency']} | {ack['p50_ms']} ms | {ack['p95_ms']} ms | {ack['p99_ms']} ms | {ack['pushes_per_s']} pushes/s |",
        f"| webhook ack at {rate['target_per_s']:.0f}/s | {rate['p50_ms']} ms | {rate['p95_ms']} ms | {rate['p99_ms']} ms | {rate['achieved_per_s']} pushes/s achieved |",
        f"| red-flag answer | {results['red_flag_to_reply']['first_reply']['p50_ms']} ms | {results['red_flag_to_reply']['first_reply']['p95_ms']} ms | | |",
        *[f"| recommendation, {n} patient(s) | {p50} ms | {p95} ms | | {patients[n]['messages_per_s']} msg/s |" for n, p50, p95 in rows],
        "", f"Worker RSS: {worker['worker_rss_mb']} MB; model {worker['model_tokens_per_s']} tokens/s; "
        f"mean per stage {worker['mean_ms_per_stage']} ms.", "",
        f"Throughput, 4 patients: {results['throughput_messages_per_s']} messages/s.", "", "![latency](latency.svg)", "",
    ]  # fmt: skip
    report = directory / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report
