"""The ``triage`` command: run, demo, predict, eval, bench, settings."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from triage.config import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@click.group()
def main() -> None:
    """导诊助手 command line."""


@main.command()
@click.option("--workers", default=None, type=int, help="Celery worker processes (default: setting).")
def run(workers: int | None) -> None:
    """Start Redis, the fake WeChat API, a Celery worker with the model, and the web app."""
    from triage.llm import default_model_path
    from triage.services import warm_index
    from triage.stack import Stack

    settings = Settings()
    if settings.model_path is None and settings.model_mode != "off":
        click.echo("准备模型文件 (Gemma 3 270M Q4_K_M) ...")
        default_model_path(settings.instance_dir)
    click.echo("准备检索索引（首次启动约需一两分钟）...")
    warm_index(settings)
    stack = Stack(settings, persistent=True, worker_concurrency=workers or settings.worker_concurrency)
    stopping = False

    def _stop(*_args: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            click.echo("\n正在停止 ...")
            stack.stop()
            sys.exit(0)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    click.echo("启动中：Redis、模拟微信接口、Celery 工作进程（加载模型）、Web 服务 ...")
    try:
        stack.start()
    except Exception as exc:
        stack.stop()
        raise click.ClickException(str(exc)) from exc
    password = _demo_admin(settings)
    click.echo(
        f"""
导诊助手已启动
  消息推送地址 (webhook): {stack.web_url}/wechat/push
  知识库编辑器:           {stack.web_url}/editor/  用户 admin  密码 {password}
  模拟微信接口:           {stack.fake_url}
  Redis:                  {stack.redis_url}
试一试（另开一个终端）:
  make demo TEXT="孩子发烧三天，咳嗽有痰"
按 Ctrl-C 停止。
"""
    )
    while True:
        for name, proc in stack.processes.items():
            if proc.poll() is not None:
                click.echo(f"{name} 已退出 (code {proc.returncode})，正在停止", err=True)
                _stop()
        time.sleep(1)


def _demo_admin(settings: Settings) -> str:
    """A demo admin account on first run (development only); its password is kept in the
    instance folder, readable by this user only, so later runs can print it again."""
    from triage.services import open_database
    from triage.store.users import UserStore

    secret = settings.instance_dir / "demo-admin.txt"
    users = UserStore(open_database(settings))
    if settings.env == "production":
        return "（生产环境不创建演示账号：flask --app triage user create <用户名>）"
    if not users.exists("admin"):
        secret.write_text(users.create("admin", "admin", display_name="演示管理员"), "utf-8")
        secret.chmod(0o600)
    return secret.read_text("utf-8").strip() if secret.exists() else f"（见 {secret}）"


@main.command()
@click.argument("text")
@click.option("--web", default=None, help="Web app URL (default: http://127.0.0.1:<web_port>).")
@click.option("--fmt", type=click.Choice(["xml", "json"]), default="xml")
@click.option("--plain", is_flag=True, help="Plain mode instead of AES safe mode.")
@click.option("--openid", default=None, help="Sender openid (default: a fixed demo user).")
@click.option("--timeout", default=60.0, help="Seconds to wait for the reply.")
@click.option("--no-consent", is_flag=True, help="Do not send 同意 first (shows the privacy notice).")
def demo(text: str, web: str | None, fmt: str, plain: bool, openid: str | None, timeout: float,
         no_consent: bool) -> None:  # fmt: skip
    """Push TEXT as WeChat would and print the customer-service reply."""
    from triage.wechat.crypto import PushCrypto
    from triage.wechat.pusher import message_fields, push, replies_for, wait_for_replies

    settings = Settings()
    web = web or f"http://127.0.0.1:{settings.web_port}"
    openid = openid or "o_demo_patient_0001"
    crypto = PushCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
    before = len(replies_for(settings.wechat_api_base, openid))
    if not no_consent:  # the demo patient agrees to the privacy notice first, as a real one must
        push(web, crypto, message_fields(openid, "同意"), fmt=fmt, encrypted=not plain)
        before = len(wait_for_replies(settings.wechat_api_base, openid, before + 1, timeout))
    response = push(web, crypto, message_fields(openid, text), fmt=fmt, encrypted=not plain)
    click.echo(f"推送: HTTP {response.status_code} {response.text!r}")
    if response.status_code != 200:
        raise SystemExit(1)
    started = time.monotonic()
    found = wait_for_replies(settings.wechat_api_base, openid, before + 1, timeout)
    if len(found) <= before:
        raise click.ClickException(f"{timeout:.0f} 秒内没有收到回复")
    click.echo(f"回复 ({time.monotonic() - started:.2f} s):\n")
    click.echo(found[before]["text"]["content"])


@main.command()
@click.option("--input", "inp", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--output", "out", required=True, type=click.Path(path_type=Path))
@click.option("--no-llm", is_flag=True, help="Retrieval and rules only.")
@click.option("--processes", default=None, type=int, help="Worker processes (default: up to 2).")
def predict(inp: Path, out: Path, no_llm: bool, processes: int | None) -> None:
    """Single-turn department prediction for a JSONL file of complaints."""
    from triage.predict import predict_file

    stats = predict_file(Settings(), inp, out, use_model=not no_llm, processes=processes)
    click.echo(json.dumps(stats, ensure_ascii=False), err=True)


@main.command("eval")
@click.option("--dev", "dev", default=None, type=click.Path(path_type=Path), help="Labelled JSONL (skipped if absent).")
@click.option("--output", "out", default=Path("eval/results.json"), type=click.Path(path_type=Path))
@click.option("--modes", default="retrieval,score,generate", help="Comma list of: retrieval, score, generate.")
@click.option("--generate-rows", default=300, help="Rows for generate mode (slow on CPU); 0 = all.")
@click.option("--conversations", "convos", default=Path("eval/conversations.yaml"), type=click.Path(path_type=Path),
              help="Scripted multi-turn conversations scored against the rubric.")  # fmt: skip
def evaluate(dev: Path | None, out: Path, modes: str, generate_rows: int, convos: Path) -> None:
    """Predict on a labelled set in each mode, replay the scripted conversations; write JSON."""
    from triage.predict import predict_file, read_rows, score

    # Sections not re-run this time (e.g. no labelled set here) keep their last numbers.
    results: dict[str, dict] = json.loads(out.read_text("utf-8")) if out.exists() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    if convos.exists():
        results["conversations"] = _evaluate_conversations(convos)
    if dev is None or not dev.exists():
        click.echo(f"no labelled set at {dev}; single-turn accuracy skipped", err=True)
        modes = ""
    for mode in [m.strip() for m in modes.split(",") if m.strip()]:
        settings = Settings(model_mode="score" if mode == "retrieval" else mode)
        gold = dev
        if mode == "generate" and generate_rows:
            # Generation takes seconds per row on a CPU: a fixed prefix of the set, plus the
            # retrieval score on the same rows so the two can be compared.
            gold = out.parent / "dev-subset.jsonl"
            rows = list(read_rows(dev))[:generate_rows]
            gold.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            baseline = out.parent / "pred-retrieval-subset.jsonl"
            predict_file(settings, gold, baseline, use_model=False)
            results["retrieval_on_generate_rows"] = score(gold, baseline)
        pred_path = out.parent / f"pred-{mode}.jsonl"
        stats = predict_file(settings, gold, pred_path, use_model=mode != "retrieval")
        results[mode] = {**score(gold, pred_path), **stats}
        click.echo(f"{mode}: {json.dumps(results[mode], ensure_ascii=False)}")
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(f"written {out}")


def _evaluate_conversations(path: Path) -> dict:
    """The pipeline on a throwaway Redis and database, with the default model."""
    import tempfile

    import redis

    from triage.conversations import evaluate as evaluate_conversations
    from triage.pipeline import TriagePipeline
    from triage.redis_server import EmbeddedRedis
    from triage.services import build_consultations, build_engine, build_model
    from triage.sessions import SessionStore

    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis", persistent=False).start()
        try:
            settings = Settings(redis_url=server.url, database_url=f"sqlite:///{tmp}/eval.db")
            engine = build_engine(settings, model=build_model(settings))
            pipeline = TriagePipeline(engine, SessionStore(redis.Redis.from_url(server.url)),
                                      build_consultations(settings))  # fmt: skip
            report = evaluate_conversations(pipeline, path, engine.retriever)
        finally:
            server.stop()
    click.echo(f"conversations: {report['conversations']}, all rubric items passed: {report['all_items_passed']}")
    for item, row in report["rubric"].items():
        click.echo(f"  {row['score']:.3f}  {row['passed']}/{row['applicable']}  {item}  {row['label']}")
    for cid, missed in report["failures"].items():
        click.echo(f"  missed {cid}: {', '.join(missed)}")
    return report


@main.command()
@click.option("--output", "out", default=Path("bench/results.json"), type=click.Path(path_type=Path))
@click.option("--pushes", default=1000, help="Signed pushes for the acknowledgement benchmark.")
@click.option("--concurrency", default=8, help="Concurrent senders for the acknowledgement benchmark.")
@click.option("--complaints", default=20, help="Complaints for the message-to-reply benchmark.")
def bench(out: Path, pushes: int, concurrency: int, complaints: int) -> None:
    """Webhook acknowledgement latency and message-to-reply latency; writes JSON."""
    from triage.bench import run_bench, write_report

    results = run_bench(Settings(), pushes=pushes, concurrency=concurrency, complaints=complaints)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    click.echo(json.dumps(results, ensure_ascii=False, indent=2))
    click.echo(f"report: {write_report(results, out.parent)}")


@main.command("settings")
def show_settings() -> None:
    """Print the settings table (Markdown) for the README."""
    click.echo("| variable | type | default | description |\n|---|---|---|---|")
    for name, field in Settings.model_fields.items():
        default = field.default if not callable(field.default_factory) else "(computed)"
        if isinstance(default, Path):
            default = os.path.relpath(default, Path.cwd()) if default.is_absolute() else default
        click.echo(f"| `TRIAGE_{name.upper()}` | {_type_name(field.annotation)} | `{default}` | {field.description} |")


def _type_name(annotation: object) -> str:
    return str(annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "").replace(" | ", " or ")


if __name__ == "__main__":
    main()
