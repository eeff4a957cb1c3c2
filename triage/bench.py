"""``make bench``: measured, not asserted. Starts its own stack on free ports.

- webhook acknowledgement latency for N signed, encrypted pushes at a fixed
  concurrency (nothing consumes the queue, so only the web path is measured);
- message → reply latency for real complaints through the worker and model.
"""

from __future__ import annotations

import platform
import secrets
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

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


def bench_ack(stack: Stack, crypto: PushCrypto, pushes: int, concurrency: int) -> dict:
    bodies = [build_push(crypto, message_fields("o_bench_" + secrets.token_hex(4), "头疼两天")) for _ in range(pushes)]
    local = {}

    def send(item) -> tuple[float, int]:
        session = local.setdefault(id(__import__("threading").current_thread()), requests.Session())
        body, query, headers = item
        started = time.perf_counter()
        response = session.post(f"{stack.web_url}/wechat/push", params=query, data=body, headers=headers, timeout=10)
        return time.perf_counter() - started, response.status_code

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


def run_bench(settings: Settings, pushes: int = 1000, concurrency: int = 8, complaints: int = 20) -> dict:
    crypto = PushCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    results: dict = {"machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()}}

    logs = settings.instance_dir / "bench-logs"
    ack_stack = pick_ports(Stack(settings, persistent=False, log_dir=logs))
    ack_stack.start(worker=False)
    try:
        results["webhook_ack"] = bench_ack(ack_stack, crypto, pushes, concurrency)
        redis.Redis.from_url(ack_stack.redis_url).flushdb()
    finally:
        ack_stack.stop()

    stack = pick_ports(Stack(settings, persistent=False, log_dir=logs))
    stack.start(wait=300)
    try:
        bench_reply(stack, crypto, 2)  # warm-up: first-call costs are not what a patient sees
        results["message_to_reply"] = bench_reply(stack, crypto, complaints)
    finally:
        stack.stop()
    return results
