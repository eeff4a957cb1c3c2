"""The editor in a real headless Chromium (Debian's package, driven by Playwright) against
the whole running stack: log in, add a colloquial word, try it, publish as reviewer, see
the worker answer a WeChat push with the new department, roll back, see the old answer.
Screenshots of the main pages go to test-artifacts/screenshots/."""

from __future__ import annotations

import re
import secrets
import shutil

import pytest
from conftest import ARTIFACTS, department_for

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = ARTIFACTS / "screenshots"


@pytest.fixture()
def browser_page():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: `make test` installs Debian's chromium package (needs root)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1180, "height": 900}, locale="zh-CN")
        page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before rollback
        yield page
        browser.close()


def _shot(page, name: str, full_page: bool = False) -> None:
    """Screenshots are artefacts, not assertions: a busy machine's capture error is retried once."""
    from playwright.sync_api import Error

    for _ in range(2):
        try:
            page.screenshot(path=SHOTS / f"{name}.png", full_page=full_page)
            return
        except Error:
            page.wait_for_timeout(500)


def _login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/editor/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/editor/**")


def test_editor_change_reaches_the_bot_and_rollback_undoes_it(stack, crypto, openid, browser_page):
    from triage.services import open_database
    from triage.store.users import UserStore

    page, base = browser_page, stack.web_url
    suffix = secrets.token_hex(3)
    users = UserStore(open_database(stack.settings))
    users.create(f"nurse-{suffix}", "editor", "nurse-password-1", display_name="李护士")
    users.create(f"chief-{suffix}", "reviewer", "chief-password-1", display_name="王主任")
    complaint = "我家老人的咕咚病又犯了"  # a colloquial word no department knows yet
    before = department_for(stack, crypto, openid, complaint)
    assert before != "眼科"
    live = page.context.request.get(f"{base}/healthz").json()["kb_version"]

    page.goto(f"{base}/editor/login")
    _shot(page, "login")
    _login(page, base, f"nurse-{suffix}", "nurse-password-1")
    page.goto(f"{base}/editor/departments")
    page.fill("input[name=q]", "眼")
    page.click("text=搜索")
    _shot(page, "departments")
    page.click("a:text-is('眼科')")
    page.fill("input[name=term]", "咕咚病")
    page.fill("input[name=aliases]", "老犯咕咚病、咕咚病犯了")
    page.select_option("select[name=kind]", "condition")
    page.click("text=添加到草稿")
    assert "已添加「咕咚病」" in page.inner_text(".flash")
    _shot(page, "department", full_page=False)

    page.goto(f"{base}/editor/try")
    page.fill("input[name=text]", complaint)
    page.fill("input[name=age]", "70")
    page.click("button[type=submit]")
    assert page.inner_text("#try-department") == "眼科"
    _shot(page, "try", full_page=True)

    page.click("text=退出")
    _login(page, base, f"chief-{suffix}", "chief-password-1")
    page.goto(f"{base}/editor/publish")
    assert "咕咚病" in page.inner_text("#diff")
    _shot(page, "publish", full_page=True)
    page.fill("input[name=note]", "眼科增加“咕咚病”说法")
    page.click("text=发布为新版本")
    published = int(re.search(r"已发布 v(\d+)", page.inner_text(".flash")).group(1))
    assert department_for(stack, crypto, openid, complaint) == "眼科"

    assert published > int(live[1:])
    page.click(f"form[action$='/rollback/{live[1:]}'] button")
    assert f"已回滚到 {live}" in page.inner_text(".flash")
    assert department_for(stack, crypto, openid, complaint) == before

    page.goto(f"{base}/editor/audit")
    assert "kb.publish" in page.inner_text("table") and "kb.rollback" in page.inner_text("table")
    _shot(page, "audit", full_page=False)


def test_chat_page_consent_conversation_emergency_and_deletion(stack, browser_page):
    page, base = browser_page, stack.web_url
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.goto(f"{base}/chat")
    page.wait_for_selector("#consent:not([hidden])")
    assert "同意" in page.inner_text("#notice") and "删除我的数据" in page.inner_text("#notice")
    _shot(page, "chat-consent")
    page.click("#agree")
    page.wait_for_selector(".bubble.bot")  # the welcome

    def say(text: str) -> None:
        turns = ".bubble.bot:not(.typing), .card"  # a bot turn is a bubble or a card
        before = page.locator(turns).count()
        page.fill("#text", text)
        page.click("#send")
        page.wait_for_function(f"document.querySelectorAll('{turns}').length > {before}", timeout=90_000)

    say("头疼两天了，太阳穴胀痛")
    say("女，28")
    for _ in range(3):  # answer the follow-up questions with the quick-reply buttons
        if page.locator("#result-card").count():
            break
        buttons = page.locator(".quick button")
        label = "直接推荐" if buttons.count() == 0 else buttons.first.inner_text()
        say(label)
    page.wait_for_selector("#result-card", timeout=90_000)
    assert "建议科室" in page.inner_text("#result-card .department")
    assert "仅供参考" in page.inner_text("#result-card .notice")
    _shot(page, "chat-result", full_page=True)

    say("我爸突然胸口剧痛，满头大汗，左胳膊发麻")
    page.wait_for_selector("#emergency-card", timeout=90_000)
    assert page.get_attribute("#emergency-card a.call", "href") == "tel:120"
    assert "仅供参考，不能替代医生诊断" in page.inner_text("#emergency-card .notice")
    _shot(page, "chat-emergency", full_page=True)

    page.click("#delete")  # the confirm() is accepted by the fixture
    page.wait_for_selector("#consent:not([hidden])", timeout=30_000)
