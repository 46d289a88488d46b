"""The page as an installable app with push notifications, in real Chromium against a real server: the
manifest and the service worker, the conversation named in the address (/#%23room), the Notifications
switch (permission on a click, a subscription with the server's VAPID key, WEBPUSH REGISTER, turning it
off), and a push for a mention (sent by the server, encrypted, to an endpoint on loopback) shown by the
service worker as a notification.

Chromium in a test has no push service to subscribe to (Playwright's contexts are incognito ones, where
Chrome has no Push API, and the service would be Google's, on the internet): one test shows what the page
says when the browser's own subscribe() fails; the end-to-end test gives the page a
subscription made of real keys (WebCrypto P-256, a random auth secret) whose endpoint is a small HTTP
server in the test, in place of the browser's push service. The server encrypts to those keys, the test
decrypts what arrived with the page's private key (http_ece), and hands it to the service worker as
Chromium's push service would (DevTools' ServiceWorker.deliverPushMessage).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.web.conftest import WebServer, start_web_server, stop_web_server
from tests.web.test_login import register_over_tcp

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
from playwright.sync_api import Page, expect

from tests.web.test_browser import Person

expect.set_options(timeout=8000)

BASE_CONFIG = """
login_attempts_per_ip = 100
flood_burst_lines = 1000
flood_lines_per_s = 1000.0
"""
# The test's push endpoint is on loopback, over http.
CONFIG = BASE_CONFIG + """
webpush_allow_http = true
webpush_allow_private_addresses = true
"""

# In place of the browser's push service: a subscription with real keys, its endpoint given by the test.
FAKE_PUSH_SERVICE = """
const ENDPOINT = %s;
const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0)).buffer;
// Kept in localStorage as a browser keeps its subscription: the next page of the site finds it.
const asSubscription = (saved) => ({
  endpoint: saved.endpoint,
  options: { applicationServerKey: unb64(saved.appKey), userVisibleOnly: true },
  getKey: (name) => (name === "p256dh" ? unb64(saved.p256dh) : name === "auth" ? unb64(saved.auth) : null),
  unsubscribe: async () => {
    localStorage.removeItem("fake-push");
    localStorage.setItem("fake-push-unsubscribed", "yes");
    return true;
  },
});
PushManager.prototype.subscribe = async function (options) {
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  const saved = {
    endpoint: ENDPOINT,
    appKey: b64(options.applicationServerKey),
    p256dh: b64(await crypto.subtle.exportKey("raw", pair.publicKey)),
    auth: b64(crypto.getRandomValues(new Uint8Array(16))),
    privateJwk: await crypto.subtle.exportKey("jwk", pair.privateKey),
  };
  localStorage.setItem("fake-push", JSON.stringify(saved));
  return asSubscription(saved);
};
PushManager.prototype.getSubscription = async function () {
  const saved = localStorage.getItem("fake-push");
  return saved ? asSubscription(JSON.parse(saved)) : null;
};
"""


class PushService:
    """An HTTP server on loopback that takes pushes as a push service would (201), and keeps them."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                service.received.append((self.path, dict(self.headers.items()), body))
                service.arrived.set()
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def push_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    global PUSH_KEYS_KNOWN
    try:
        server = start_web_server(tmp_path_factory.mktemp("push-page"), config_text=CONFIG)
        PUSH_KEYS_KNOWN = True
    except RuntimeError as exc:
        if "unknown key" not in str(exc):
            raise
        # Without the push branch: the tests that need no push (manifest, service worker, address) run.
        PUSH_KEYS_KNOWN = False
        server = start_web_server(tmp_path_factory.mktemp("push-page"), config_text=BASE_CONFIG)
    yield server
    stop_web_server(server)


PUSH_KEYS_KNOWN = False  # the webpush_* config keys exist (then push must be offered)


def offers_push(server: WebServer) -> bool:
    """Whether the server offers push; with its config keys known, it must (no skipping past a break)."""
    if not PUSH_KEYS_KNOWN:
        return False
    client = server.irc.client()
    try:
        client.send("CAP LS 302")
        caps = " ".join(m.params[-1] for m in client.lines_until("CAP") if m.command == "CAP")
        assert "soju.im/webpush" in caps or "draft/webpush" in caps, caps
        return True
    finally:
        client.close()


def log_in(page: Page, url: str, nick: str, password: str) -> None:
    page.goto(url)
    page.locator("#nick-input").fill(nick)
    page.locator("#password-input").fill(password)
    page.locator("#password-input").press("Enter")
    expect(page.locator("#me-account")).to_contain_text(f"logged in as {nick}")


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return errors


def test_the_page_is_an_installable_app_with_a_service_worker(
        browser: Any, push_server: WebServer, people: list[Person]) -> None:
    with urllib.request.urlopen(push_server.url + "manifest.webmanifest") as response:
        assert response.headers["Content-Type"] == "application/manifest+json"
        manifest = json.load(response)
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    sizes = {icon["sizes"]: icon["src"] for icon in manifest["icons"]}
    for size in ("192x192", "512x512"):  # what Chrome wants before it offers "Install"
        with urllib.request.urlopen(push_server.url + sizes[size]) as response:
            assert response.headers["Content-Type"] == "image/png"
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    with urllib.request.urlopen(push_server.url + "sw.js") as response:
        assert response.headers["Content-Type"].startswith("text/javascript")
        assert response.headers["Cache-Control"] == "no-cache"  # a new version is seen at once

    person = Person(browser, push_server.url, "ines")
    people.append(person)
    page = person.page
    assert page.locator("link[rel=manifest]").get_attribute("href") == "manifest.webmanifest"
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == push_server.url
    assert page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)") == push_server.url + "sw.js"


def test_the_page_opens_the_conversation_named_in_its_address(
        browser: Any, push_server: WebServer, people: list[Person]) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(push_server.url + "#%23garden")
        page.keyboard.type("jonas")
        page.keyboard.press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#garden")  # joined and shown
        assert page.evaluate("location.hash") == ""  # a reload lands where the user goes next
        # A notification clicked while the page is open: the page is told, and switches.
        page.evaluate("location.hash = '#kai'")
        expect(page.locator("#buffer-title")).to_have_text("kai")
        expect(page.locator("#topic")).to_have_text("Private conversation")
        # What the service worker does on a notification's click with a page open: it tells the page
        # (its notificationclick handler, minus the click, which no test can make on a system notification).
        page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
        worker = next(w for w in context.service_workers if w.url.endswith("/sw.js"))
        worker.evaluate("""() => self.clients.matchAll({ type: "window", includeUncontrolled: true })
            .then(pages => pages.forEach(p => p.postMessage({ type: "open", target: "#garden" })))""")
        expect(page.locator("#buffer-title")).to_have_text("#garden")
        assert not errors, errors
    finally:
        context.close()


def test_headless_chromium_has_no_push_service_and_the_switch_says_so(
        browser: Any, push_server: WebServer) -> None:
    if not offers_push(push_server):
        pytest.skip("this server does not offer soju.im/webpush yet (the push branch)")
    register_over_tcp(push_server, "lena", "lena-has-a-phone")
    context = browser.new_context()
    page = context.new_page()
    errors = watch_errors(page)
    try:
        log_in(page, push_server.url, "lena", "lena-has-a-phone")
        switch = page.locator("#push-input")
        expect(page.locator("#push-field")).to_be_visible()
        # Not asked yet: the switch asks (on its click), the page-only "Notify me of mentions" is not shown.
        assert page.evaluate("Notification.permission") == "default"
        expect(page.locator("#notify-button")).to_be_hidden()
        expect(switch).not_to_be_checked()
        context.grant_permissions(["notifications"])  # (the user's "Allow")
        switch.click()  # (not check(): the failure may untick it before check() looks)
        # Chromium's own subscribe() has no push service here (an incognito context, no internet): it
        # fails, and the page says so.
        expect(page.locator("#push-status")).to_contain_text("push service", timeout=20000)
        expect(page.locator("#push-status")).to_have_class("push-status error")
        expect(switch).not_to_be_checked()
        expect(switch).to_be_enabled()
        # (Chromium's own console line about it; nothing from the page)
        assert not [e for e in errors if "Push API" not in e], errors
    finally:
        context.close()


def test_a_mention_while_away_is_pushed_and_the_service_worker_shows_it(
        browser: Any, push_server: WebServer) -> None:
    if not offers_push(push_server):
        pytest.skip("this server does not offer soju.im/webpush yet (the push branch)")
    http_ece = pytest.importorskip("http_ece")
    from cryptography.hazmat.primitives.asymmetric import ec

    service = PushService()
    register_over_tcp(push_server, "giulia", "giulia-on-the-go")
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=push_server.url.rstrip("/"))
    endpoint = f"{service.url}/push/giulia-phone"
    context.add_init_script(FAKE_PUSH_SERVICE % json.dumps(endpoint))
    page = context.new_page()
    errors = watch_errors(page)
    luca = None
    try:
        log_in(page, push_server.url, "giulia", "giulia-on-the-go")
        page.locator("#always-on-input").check()
        expect(page.locator("#me-always-on")).to_be_visible()
        switch = page.locator("#push-input")
        expect(page.locator("#push-field")).to_be_visible()
        switch.check()
        expect(page.locator("#push-status")).to_contain_text("On: mentions and private messages")
        expect(switch).to_be_checked()
        saved = json.loads(page.evaluate("localStorage.getItem('fake-push')"))
        jwk = saved["privateJwk"]
        auth = base64.b64decode(saved["auth"])

        # She closes the page; luca mentions her: the server pushes it to her subscription.
        page.close()
        luca = push_server.irc.client()
        luca.register("luca", caps=["message-tags"])
        luca.expect("366")
        # Once the server has seen her page go (she is away then, her nick always-on), the mention.
        deadline = time.monotonic() + 8
        while True:
            luca.send("WHOIS giulia")
            replies = luca.lines_until("318")
            if any(m.command == "301" for m in replies) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        luca.send("PRIVMSG #lobby :giulia: the projector works again")
        assert service.arrived.wait(15), "no push arrived"
        path, headers, body = service.received[0]
        assert path == "/push/giulia-phone"
        assert headers["Content-Encoding"] == "aes128gcm"
        assert headers["Authorization"].startswith("vapid ")
        number = int.from_bytes(_b64(jwk["d"]), "big")
        private_key = ec.derive_private_key(number, ec.SECP256R1())
        line = http_ece.decrypt(body, private_key=private_key, auth_secret=auth, version="aes128gcm").decode()
        assert line.endswith("PRIVMSG #lobby :giulia: the projector works again"), line

        # What Chromium's push service would hand to the service worker.
        page = context.new_page()
        errors += watch_errors(page)
        page.goto(push_server.url)
        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
        page.wait_for_timeout(200)
        ours = [r for r in registrations if r["scopeURL"] == push_server.url and not r["isDeleted"]]
        assert ours, registrations
        cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": push_server.url.rstrip("/"), "registrationId": ours[0]["registrationId"], "data": line})
        shown = notifications(page, 1)
        assert shown == [["luca in #lobby", "giulia: the projector works again", "#lobby", "salotto #lobby"]]

        # A private message reads as one, and leads to the conversation with its sender.
        cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": push_server.url.rstrip("/"), "registrationId": ours[0]["registrationId"],
            "data": "@msgid=x1 :luca!l@127.0.0.1 PRIVMSG giulia :lunch at 1?"})
        shown = notifications(page, 2)
        assert ["luca", "lunch at 1?", "luca", "salotto luca"] in shown, shown

        # Back on the page, logged in: the switch is on (registered again), and off unregisters.
        log_in(page, push_server.url, "giulia", "giulia-on-the-go")
        switch = page.locator("#push-input")
        expect(switch).to_be_checked()
        switch.uncheck()
        expect(switch).not_to_be_checked()
        page.wait_for_function("localStorage.getItem('fake-push-unsubscribed') === 'yes'")
        assert not errors, errors
    finally:
        if luca is not None:
            luca.close()
        context.close()
        service.close()


def notifications(page: Page, count: int) -> list[list[str]]:
    """The service worker's notifications on show, once there are ``count`` of them: [title, body, the
    conversation a click opens, tag]. Looked at every 10 ms in the page (headless Chromium does not keep
    them on show for long)."""
    found: list[list[str]] = page.evaluate("""count => new Promise(resolve => {
        const until = Date.now() + 15000;
        const look = () => navigator.serviceWorker.ready.then(r => r.getNotifications()).then(list => {
            if (list.length >= count || Date.now() > until) {
                resolve(list.map(n => [n.title, n.body, n.data.target, n.tag]));
            } else setTimeout(look, 10);
        });
        look();
    })""", count)
    return found


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_mention_while_hidden_shows_through_the_service_worker_where_chrome_has_no_notification_constructor(
        browser: Any, push_server: WebServer) -> None:
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=push_server.url.rstrip("/"))
    # Chrome on Android: `new Notification()` throws, only the service worker may show one. (And the page
    # is told it is hidden, as test_replies.py does: headless Chromium never hides a page.)
    context.add_init_script("""
        window.__hidden = false;
        Object.defineProperty(Document.prototype, 'hidden', { get: () => window.__hidden });
        const Real = window.Notification;
        window.Notification = class extends Real {
          constructor() {
            window.__refused = (window.__refused || 0) + 1;
            throw new TypeError("Failed to construct 'Notification': Illegal constructor.");
          }
        };
        Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission });
    """)
    page = context.new_page()
    errors = watch_errors(page)
    try:
        page.goto(push_server.url)
        page.keyboard.type("maya")
        page.keyboard.press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#lobby")
        page.wait_for_function("navigator.serviceWorker.ready.then(() => true)")
        page.evaluate("() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); }")
        nora = push_server.irc.client()
        nora.register("nora")
        nora.send("PRIVMSG maya :are you there?")
        shown = notifications(page, 1)
        assert ["nora", "are you there?", "nora", "salotto nora"] in shown, (
            shown, page.evaluate("[window.__refused, document.hidden]"), errors)
        nora.close()
        assert not errors, errors
    finally:
        context.close()


def test_another_account_turning_notifications_on_on_the_same_browser_gets_a_subscription_of_its_own(
        browser: Any, push_server: WebServer) -> None:
    """A shared computer: amos turned notifications on, left (/quit), and bice logs in on the same browser
    and turns them on too. She gets a new subscription; amos's is given up (the push service then refuses
    the server's pushes to it). Reusing it registered one subscription for both accounts: amos's mentions
    and private messages kept showing on bice's screen under her switch."""
    if not offers_push(push_server):
        pytest.skip("this server does not offer soju.im/webpush yet (the push branch)")
    register_over_tcp(push_server, "amos", "amos-on-a-shared-pc")
    register_over_tcp(push_server, "bice", "bice-on-a-shared-pc")
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=push_server.url.rstrip("/"))
    context.add_init_script(FAKE_PUSH_SERVICE % json.dumps("http://127.0.0.1:9/push/shared-pc"))
    page = context.new_page()
    errors = watch_errors(page)
    try:
        log_in(page, push_server.url, "amos", "amos-on-a-shared-pc")
        switch = page.locator("#push-input")
        switch.check()
        expect(page.locator("#push-status")).to_contain_text("On")
        expect(switch).to_be_checked()
        amos_keys = json.loads(page.evaluate("localStorage.getItem('fake-push')"))["p256dh"]
        page.locator("#message-input").fill("/quit")
        page.locator("#message-input").press("Enter")
        expect(page.locator("#login")).to_be_visible()
        page.locator("#nick-input").fill("bice")
        page.locator("#password-input").fill("bice-on-a-shared-pc")
        page.locator("#password-input").press("Enter")
        expect(page.locator("#me-account")).to_contain_text("logged in as bice")
        expect(switch).not_to_be_checked()  # (amos's, not hers)
        switch.check()
        expect(page.locator("#push-status")).to_contain_text("On")
        expect(switch).to_be_checked()
        assert page.evaluate("localStorage.getItem('fake-push-unsubscribed')") == "yes"
        bice_keys = json.loads(page.evaluate("localStorage.getItem('fake-push')"))["p256dh"]
        assert bice_keys != amos_keys
        assert not errors, errors
    finally:
        context.close()
