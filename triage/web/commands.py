"""``flask --app triage ...`` commands for the database: migrations, knowledge base, users."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from triage.runtime import runtime
from triage.store.users import ROLES

db_cli = AppGroup("db", help="数据库迁移。")
kb_cli = AppGroup("kb", help="知识库：导入随附 YAML、导出为 YAML、查看版本。")
user_cli = AppGroup("user", help="工作人员账号。")


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    runtime.db  # noqa: B018 - opening it migrates
    click.echo("数据库已是最新结构")
    assert runtime.settings is not None
    if not runtime.knowledge.is_empty():
        number = runtime.knowledge.adopt_new_documents(runtime.settings.knowledge_dir, actor="cli")
        if number is not None:
            click.echo(f"已导入新版本随附的文档并发布 v{number}")


@kb_cli.command("import")
@click.option("--from", "source", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="YAML folder (default: the shipped knowledge/).")  # fmt: skip
def kb_import(source: Path | None) -> None:
    """Load the YAML seed into an empty database and publish it as version 1."""
    assert runtime.settings is not None
    number = runtime.knowledge.import_seed(source or runtime.settings.knowledge_dir, actor="cli")
    click.echo(f"已导入并发布 v{number}")


@kb_cli.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "number", type=int, default=None, help="Version number (default: the active one).")
def kb_export(directory: Path, number: int | None) -> None:
    """Write a published version as YAML, to keep it under version control."""
    click.echo(f"已导出到 {runtime.knowledge.export(directory, number)}")


@kb_cli.command("versions")
def kb_versions() -> None:
    for v in runtime.knowledge.versions():
        click.echo(f"v{v['number']}{' *' if v['active'] else '  '} {v['created_at']} {v['published_by']} {v['note']}")


@user_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), default="admin", show_default=True)
@click.option("--password", default=None, help="At least 10 characters (default: generated and printed).")
def user_create(username: str, role: str, password: str | None) -> None:
    """Create a staff account, e.g. the first admin."""
    try:
        password = runtime.users.create(username, role, password, actor="cli")
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"已创建 {username}（{ROLES[role]}），密码：{password}")


def init_app(app: Flask) -> None:
    for group in (db_cli, kb_cli, user_cli):
        app.cli.add_command(group)
