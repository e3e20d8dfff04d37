"""The web console (broker/console) of a real broker process, fed by real clients.

The JSON under /console/api and the HTML pages come from the same views, so the first
tests hold the numbers against what the clients did; the browser test then drives
headless Chromium (Debian's chromium and chromium-driver, through Selenium) over every
page: the pages render, show those numbers, and a chart redraws as traffic flows.
Set ODRADEK_SCREENSHOTS=DIR to keep a screenshot of each page (`make screenshots`
refreshes the README's).
"""

import json
import os
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    KafkaAdminClient,
    ResourcePattern,
    ResourceType,
)
from kafka.structs import OffsetAndMetadata

from tests.clients import create_topics
from tests.conftest import require_tool
from tests.metrics_http import get

HOSTILE = "<script>document.title='owned'</script>"


def api(node, path: str):
    status, body = get(node.http + "/console/api" + path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def fill(node, topic: str = "orders", group: str = "billing") -> None:
    """25 records over two partitions (one with a hostile value), and a group that
    committed 10 of partition 0's 13."""
    create_topics(node.bootstrap, [topic], 2)
    producer = KafkaProducer(bootstrap_servers=node.bootstrap, linger_ms=0)
    for i in range(25):
        value = HOSTILE if i == 24 else f"order {i}"
        producer.send(topic, key=f"k{i}".encode(), value=value.encode(), partition=i % 2,
                      headers=[("source", b"test")])
    producer.flush(10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id=group, enable_auto_commit=False)
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(10, "", -1)})
    consumer.close()


def test_the_numbers_are_the_clients(http_node):
    fill(http_node)
    cluster = api(http_node, "")
    assert cluster["topics"] == 2  # and __consumer_offsets, since the group committed
    assert [n["node_id"] for n in cluster["nodes"]] == [1] and cluster["active_controller"] == 1
    assert cluster["under_replicated"] == [] and cluster["offline"] == []
    rows = {t["name"]: t for t in api(http_node, "/topics")["topics"]}
    assert rows["__consumer_offsets"]["internal"]
    row = rows["orders"]
    assert (row["internal"], row["partitions"], row["messages_in"]) == (False, 2, 25)
    topic = api(http_node, "/topics/orders")
    assert [p["high_watermark"] for p in topic["partitions"]] == [13, 12]
    records = api(http_node, "/topics/orders/records?partition=1&offset=3&count=4")["records"]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in records] == [
        (o, f"k{2 * o + 1}", f"order {2 * o + 1}", {"source": "test"}) for o in range(3, 7)]
    [group] = api(http_node, "/groups")["groups"]
    assert (group["group_id"], group["lag"]) == ("billing", 3)
    detail = api(http_node, "/groups/billing")
    assert detail["offsets"] == [{"topic": "orders", "partition": 0, "committed": 10, "lag": 3}]
    # The live view of the protocol: each connection's client software (KIP-511), id, principal.
    consumer = KafkaConsumer(bootstrap_servers=http_node.bootstrap, client_id=HOSTILE)
    try:
        consumer.topics()
        mine = [c for c in api(http_node, "/connections")["connections"] if c["client_id"] == HOSTILE]
        assert mine and all((c["client_software_name"], c["principal"], c["listener"]) ==
                            ("kafka-python", "User:ANONYMOUS", "PLAINTEXT") for c in mine)
        status, page = get(http_node.http + "/console/connections")
        assert status == 200 and "kafka-python" in page and HOSTILE not in page
    finally:
        consumer.close()


def test_by_time_and_bad_input(http_node):
    fill(http_node)
    [first] = api(http_node, "/topics/orders/records?partition=0&timestamp=0&count=1")["records"]
    assert first["offset"] == 0
    assert api(http_node, "/topics/orders/records?partition=0&timestamp=99999999999999")["records"] == []
    assert get(http_node.http + "/console/topics/orders/records?offset=abc")[0] == 400
    assert get(http_node.http + "/console/topics/nope")[0] == 404
    assert get(http_node.http + "/console/groups/nope")[0] == 404
    assert get(http_node.http + "/console/static/..%2F__init__.py")[0] == 404
    # A hostile record value is shown as text, never run as markup.
    status, page = get(http_node.http + "/console/topics/orders/records?partition=0&offset=12")
    assert status == 200 and HOSTILE not in page and "&lt;script&gt;" in page
    # Without an authorizer the console is read-only: no forms, and a POST says why.
    assert 'class="action"' not in get(http_node.http + "/console/topics")[1]
    status, text, _ = post(http_node.http + "/console/topics", {"name": "x"}, "alice", "pw")
    assert status == 403 and "no authorizer" in text
    assert "x" not in api(http_node, "/topics")["topics"]


def headless_chromium(tmp_path):
    """Debian's chromium through Selenium (skipped where absent, failed under CI=true)."""
    chromium, driver_path = require_tool("chromium"), require_tool("chromedriver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,800",
                f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def test_pages_in_headless_chromium(http_node, tmp_path):
    browser = headless_chromium(tmp_path)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    fill(http_node)
    shots = Path(os.environ.get("ODRADEK_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    def visit(path: str):
        browser.get(http_node.http + path)
        assert "Odradek" in browser.title and "owned" not in browser.title
        return browser

    def follow(element, url_part: str) -> None:
        """Click, then wait for the next page (a click does not wait for navigation)."""
        element.click()
        WebDriverWait(browser, 10).until(expected_conditions.url_contains(url_part))
        WebDriverWait(browser, 10).until(
            lambda b: b.execute_script("return document.readyState") == "complete")

    try:
        visit("/console")
        assert browser.find_element(By.ID, "topic-count").text == "2"
        browser.save_screenshot(str(shots / "cluster.png"))
        visit("/console/topics")
        assert "25" in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".messages-in")]
        follow(browser.find_element(By.LINK_TEXT, "orders"), "/topics/orders")
        assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".hw")] == ["13", "12"]
        # The chart redraws from new samples while a producer writes.
        chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
        producer = KafkaProducer(bootstrap_servers=http_node.bootstrap, linger_ms=0)
        before, sent = int(chart.get_attribute("data-points")), 0
        deadline = time.monotonic() + 20
        while int(chart.get_attribute("data-points")) < before + 2 and time.monotonic() < deadline:
            producer.send("orders", b"more" * 100, partition=0)
            sent += 1
            time.sleep(0.3)
        producer.flush(10)
        producer.close()
        assert int(chart.get_attribute("data-points")) >= before + 2
        assert chart.find_elements(By.TAG_NAME, "polyline")
        browser.save_screenshot(str(shots / "topic.png"))
        follow(browser.find_element(By.LINK_TEXT, "browse"), "/records")
        browser.find_element(By.NAME, "offset").clear()
        browser.find_element(By.NAME, "offset").send_keys("10")
        follow(browser.find_element(By.TAG_NAME, "button"), "offset=10")
        values = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "code.value")]
        assert values[:3] == ["order 20", "order 22", HOSTILE]  # shown as text
        browser.save_screenshot(str(shots / "records.png"))
        visit("/console/groups")
        lag = 3 + sent  # the chart's producer wrote past the group's commit on partition 0
        assert browser.find_element(By.CSS_SELECTOR, ".lag").text == str(lag)
        committer = KafkaConsumer(bootstrap_servers=http_node.bootstrap, group_id="billing",
                                  enable_auto_commit=False)
        committer.commit({TopicPartition("orders", 1): OffsetAndMetadata(12, "", -1)})  # lag 0 there
        committer.close()
        follow(browser.find_element(By.LINK_TEXT, "billing"), "/groups/billing")
        assert "Group billing" in browser.find_element(By.TAG_NAME, "h1").text
        # The lag chart: one line per partition, once a sample has both commits.
        WebDriverWait(browser, 15).until(lambda b: [
            line.get_attribute("data-series") for line in b.find_elements(By.CSS_SELECTOR, "svg.chart polyline")]
            == ["orders-0", "orders-1"])
        caption = browser.find_element(By.CSS_SELECTOR, "figcaption .last").text
        assert caption == f"orders-0 {lag}, orders-1 0", caption
        assert not browser.find_elements(By.CSS_SELECTOR, "form.action")  # no authorizer: read-only
        browser.save_screenshot(str(shots / "group.png"))
        consumer = KafkaConsumer(bootstrap_servers=http_node.bootstrap, client_id="billing-reader")
        try:
            consumer.topics()
            follow(browser.find_element(By.LINK_TEXT, "Connections"), "/connections")
            assert "billing-reader" in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".client-id")]
            assert "kafka-python" in [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".software")]
            browser.save_screenshot(str(shots / "connections.png"))
        finally:
            consumer.close()
    finally:
        browser.quit()


def start_console(bootstrap: str, timeout_s: float = 10):
    """`odradek console --bootstrap B` as its own process on a free port, once it serves."""
    import subprocess
    import sys

    from tests.brokerproc import ROOT, free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "odradek.broker", "console", "--bootstrap", bootstrap,
                             "--listen", f"127.0.0.1:{port}", "--timeout", str(timeout_s)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.http = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if get(proc.http + "/console/static/console.css")[0] == 200:  # type: ignore[attr-defined]
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"odradek console did not serve: {proc.communicate()}")


def check_console_apart(console, bootstrap: str, node_ids: list[int], topic: str = "orders",
                        group: str = "billing") -> None:
    """What `odradek console` shows of a cluster that ``fill`` filled, asked only through
    Kafka requests (the same check runs against Kafka 4.4 in tests/peers)."""
    cluster = api(console, "")
    assert [n["node_id"] for n in cluster["nodes"]] == node_ids
    assert cluster["active_controller"] in node_ids and cluster["offline"] == []
    assert cluster["quorum"] is None or cluster["quorum"]["leader_id"] in node_ids
    rows = {t["name"]: t for t in api(console, "/topics")["topics"]}
    assert (rows[topic]["partitions"], rows[topic]["internal"]) == (2, False)
    assert rows[topic]["size_here"] > 25 * 20 and rows[topic]["messages_in"] is None
    described = api(console, f"/topics/{topic}")
    assert [p["high_watermark"] for p in described["partitions"]] == [13, 12]
    assert [p["log_start_offset"] for p in described["partitions"]] == [0, 0]
    records = api(console, f"/topics/{topic}/records?partition=1&offset=3&count=4")["records"]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in records] == [
        (o, f"k{2 * o + 1}", f"order {2 * o + 1}", {"source": "test"}) for o in range(3, 7)]
    [first] = api(console, f"/topics/{topic}/records?partition=0&timestamp=0&count=1")["records"]
    assert first["offset"] == 0
    [row] = [g for g in api(console, "/groups")["groups"] if g["group_id"] == group]
    assert (row["lag"], row["state"]) == (3, "Empty")
    detail = api(console, f"/groups/{group}")
    assert detail["offsets"] == [{"topic": topic, "partition": 0, "committed": 10, "lag": 3}]
    assert get(console.http + "/console/topics/nope")[0] == 404
    assert get(console.http + "/console/groups/nope")[0] == 404
    for path in ("", "/topics", f"/topics/{topic}", "/groups", f"/groups/{group}", "/connections"):
        status, page = get(console.http + "/console" + path)
        assert status == 200 and f"cluster at {bootstrap}" in page, path
    status, page = get(console.http + f"/console/topics/{topic}/records?partition=0&offset=12")
    assert status == 200 and HOSTILE not in page and "&lt;script&gt;" in page
    # The charts are sampled while the console is used: the group's lag per partition appears.
    deadline = time.monotonic() + 20
    while not api(console, f"/series/group/{group}")["points"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert api(console, f"/series/group/{group}")["points"][-1] == {"t": pytest.approx(time.time(), abs=60),
                                                                  f"{topic}-0": 3}
    # No authorizer of its own: read-only, whatever the cluster's.
    status, text, _ = post(console.http + "/console/topics", {"name": "x"}, "alice", "pw")
    assert status == 403 and "read-only" in text


def test_odradek_console_apart_from_the_broker(broker_factory):
    """`odradek console --bootstrap` serves the same pages from Kafka requests alone; SIGTERM
    stops it (exit 0); a cluster that does not answer is a 502 naming what to do."""
    import signal

    node = broker_factory()
    fill(node)
    console = start_console(node.bootstrap)
    try:
        check_console_apart(console, node.bootstrap, [1])
    finally:
        console.send_signal(signal.SIGTERM)
        assert console.wait(10) == 0
    from tests.brokerproc import free_port

    nobody = start_console(f"127.0.0.1:{free_port()}", timeout_s=1)
    try:
        status, body = get(nobody.http + "/console/api/topics")
        assert status == 502 and "--bootstrap" in body
    finally:
        nobody.kill()
        nobody.wait(10)


STANDARD_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def post(url: str, form: dict | None = None, user: str | None = None, password: str = "",
         header: bool = True) -> tuple[int, str, dict]:
    """A console action as console.js sends it: (status, text, response headers)."""
    import base64
    import urllib.error
    import urllib.parse
    import urllib.request

    headers = {"X-Odradek-Console": "1"} if header else {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form or {}).encode(), headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


@pytest.fixture(scope="module")
def secured_node(tmp_path_factory):
    """A node with the authorizer on, its HTTP listener, and SCRAM users alice
    (SCRAM-SHA-256) and bob (SCRAM-SHA-512), who have no ACLs yet; ANONYMOUS (the
    PLAINTEXT test clients) is a super user."""
    from tests.brokerproc import BrokerProcess, free_port
    from tests.local_cluster import poll_until

    http_port = free_port()
    node = BrokerProcess(tmp_path_factory.mktemp("secured"), overrides={
        "http.listener": f"127.0.0.1:{http_port}", "authorizer.class.name": STANDARD_AUTHORIZER,
        "super.users": "User:ANONYMOUS", "group.initial.rebalance.delay.ms": "0"},
        extra_args=["--add-scram", "SCRAM-SHA-256=[name=alice,password=alice-pw]",
                    "--add-scram", "SCRAM-SHA-512=[name=bob,password=bob-pw]"]).start()
    node.http = f"http://127.0.0.1:{http_port}"  # type: ignore[attr-defined]
    try:
        assert poll_until(lambda: node.log_text().count("event='scram_seeded'") == 2, 20)
        yield node
    finally:
        node.kill()


def test_actions_only_with_an_authorizer_and_as_the_acls_allow(secured_node):
    """Create a topic, delete a group, delete a topic from the console of a node with an
    authorizer: as a SCRAM user over HTTP Basic, allowed by that user's ACLs, the effect
    seen by Kafka clients; refused (and nothing changed) for a user without the ACL, a
    wrong password, no credentials, or a request without the console's header. (The
    node without an authorizer refuses every POST: test_by_time_and_bad_input.)"""
    from tests.local_cluster import poll_until

    node, base = secured_node, secured_node.http + "/console"
    fill(node, topic="orders", group="old-readers")
    admin = KafkaAdminClient(bootstrap_servers=node.bootstrap, request_timeout_ms=5000)
    try:
        for rtype, name, op in ((ResourceType.CLUSTER, "kafka-cluster", ACLOperation.CREATE),
                                (ResourceType.GROUP, "old-readers", ACLOperation.DELETE),
                                (ResourceType.TOPIC, "made-by-alice", ACLOperation.DELETE)):
            assert not admin.create_acls([ACL("User:alice", "*", op, ACLPermissionType.ALLOW,
                                              ResourcePattern(rtype, name))])["failed"]
        status, page = get(base + "/topics")
        assert status == 200 and 'class="action"' in page  # offered: the node can authorize

        create = {"name": "made-by-alice", "partitions": "3", "replication_factor": "1"}
        assert post(base + "/topics", create, "alice", "alice-pw", header=False)[0] == 403  # cross-site
        status, _, headers = post(base + "/topics", create)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert post(base + "/topics", create, "alice", "wrong")[0] == 401
        status, text, _ = post(base + "/topics", create, "bob", "bob-pw")  # no ACL
        assert status == 403 and "TOPIC_AUTHORIZATION_FAILED" in text
        status, text, _ = post(base + "/groups/old-readers/delete", None, "bob", "bob-pw")
        assert status == 403 and "GROUP_AUTHORIZATION_FAILED" in text
        assert "made-by-alice" not in admin.list_topics()
        assert "old-readers" in [g["group_id"] for g in admin.list_groups()]

        assert post(base + "/topics", {**create, "partitions": "x"}, "alice", "alice-pw")[0] == 400
        status, text, _ = post(base + "/topics", create, "alice", "alice-pw")
        assert (status, text) == (200, "done: CreateTopics made-by-alice\n")
        consumer = KafkaConsumer(bootstrap_servers=node.bootstrap)
        assert poll_until(lambda: consumer.partitions_for_topic("made-by-alice") == {0, 1, 2}, 10)
        consumer.close()
        assert post(base + "/topics", create, "alice", "alice-pw")[0] == 409  # TOPIC_ALREADY_EXISTS
        assert post(base + "/groups/old-readers/delete", None, "alice", "alice-pw")[0] == 200
        assert "old-readers" not in [g["group_id"] for g in admin.list_groups()]
        assert post(base + "/topics/orders/delete", None, "alice", "alice-pw")[0] == 403  # DELETE on one topic only
        assert post(base + "/topics/made-by-alice/delete", None, "alice", "alice-pw")[0] == 200
        assert poll_until(lambda: "made-by-alice" not in admin.list_topics(), 10)
        assert "orders" in admin.list_topics()
    finally:
        admin.close()


def test_an_action_form_in_headless_chromium(secured_node, tmp_path):
    """The page's form goes through console.js (which adds the X-Odradek-Console header) and
    shows the answer. The browser's login prompt cannot be driven headless: the Basic
    credentials ride on every request (DevTools), as after a login."""
    import base64

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    admin = KafkaAdminClient(bootstrap_servers=secured_node.bootstrap, request_timeout_ms=5000)
    try:
        assert not admin.create_acls([ACL("User:bob", "*", ACLOperation.CREATE, ACLPermissionType.ALLOW,
                                          ResourcePattern(ResourceType.TOPIC, "from-the-page"))])["failed"]
    finally:
        admin.close()
    browser = headless_chromium(tmp_path)
    try:
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {
            "Authorization": "Basic " + base64.b64encode(b"bob:bob-pw").decode()}})
        browser.get(secured_node.http + "/console/topics")
        for name in ("not-granted", "from-the-page"):
            browser.find_element(By.NAME, "name").clear()
            browser.find_element(By.NAME, "name").send_keys(name)
            browser.find_element(By.CSS_SELECTOR, "form.action button").click()
            WebDriverWait(browser, 10).until(
                lambda b, name=name: name in b.find_element(By.CSS_SELECTOR, "form.action output").text)
            if name == "not-granted":
                assert "TOPIC_AUTHORIZATION_FAILED" in browser.find_element(By.CSS_SELECTOR, "form.action output").text
        assert browser.find_element(By.CSS_SELECTOR, "form.action output").text == "done: CreateTopics from-the-page"
        # then back to the topics page, which lists it
        WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.LINK_TEXT, "from-the-page"))
        assert not browser.find_elements(By.LINK_TEXT, "not-granted")
    finally:
        browser.quit()
