"""The web console (/console) in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium): the pages render, link to each other, show the numbers the clients
made, and a page with ?refresh=1 updates by itself. Screenshots of each page are saved
under the test's tmp_path (CONSOLE_SCREENSHOTS=DIR keeps them elsewhere)."""

import os

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.conftest import require_tool
from tests.local_cluster import poll_until
from tests.metrics_http import get, start_with_http


@pytest.fixture
def node(tmp_path):
    b = start_with_http(tmp_path / "data")
    yield b
    b.stop()


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = require_tool("chromium")
    driver_path = require_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def cells(browser, table_id: str) -> list[list[str]]:
    from selenium.webdriver.common.by import By

    table = browser.find_element(By.ID, table_id)
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_console_pages_show_what_the_clients_did(node, browser, tmp_path):
    from selenium.webdriver.common.by import By

    shots = os.environ.get("CONSOLE_SCREENSHOTS") or str(tmp_path)
    producer = KafkaProducer(bootstrap_servers=node.bootstrap, linger_ms=0)
    for i in range(7):
        producer.send("shown", f"v{i}".encode(), partition=0).get(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=node.bootstrap, group_id="viewers", client_id="viewer-1")
    consumer.commit({TopicPartition("shown", 0): OffsetAndMetadata(5, "", -1)})
    base = node.http
    try:
        browser.get(base + "/console")
        assert browser.title == "Cluster · Odradek"
        [summary] = cells(browser, "summary")
        assert summary[1:3] == ["1", "1"] and summary[3] == "2"  # node, controller; shown + offsets
        assert summary[-1] == "yes"
        assert cells(browser, "brokers")[0][0] == "1"
        browser.save_screenshot(os.path.join(shots, "console-cluster.png"))

        browser.find_element(By.LINK_TEXT, "Topics").click()
        assert browser.title == "Topics · Odradek"
        row = next(r for r in cells(browser, "topics") if r[0] == "shown")
        assert row[1:5] == ["1", "1", "0", "7"]
        browser.save_screenshot(os.path.join(shots, "console-topics.png"))
        browser.find_element(By.LINK_TEXT, "shown").click()
        [p0] = cells(browser, "partitions")
        assert p0[:5] == ["0", "1", "0", "1", "1"] and p0[5:8] == ["0", "7", "7"] and int(p0[8]) > 7 * 61
        browser.save_screenshot(os.path.join(shots, "console-topic.png"))
        browser.find_element(By.LINK_TEXT, "browse").click()  # the message browser
        shown = cells(browser, "messages")
        assert [(r[0], r[3]) for r in shown] == [(str(i), f"v{i}") for i in range(7)]
        browser.save_screenshot(os.path.join(shots, "console-messages.png"))
        browser.get(base + "/console/messages/shown/0?offset=5&count=1")
        assert [(r[0], r[3]) for r in cells(browser, "messages")] == [("5", "v5")]
        browser.find_element(By.LINK_TEXT, "next").click()
        assert [(r[0], r[3]) for r in cells(browser, "messages")] == [("6", "v6")]
        browser.get(base + "/console/messages/shown/0?time=99999999999999&count=abc")
        assert browser.find_elements(By.ID, "messages") == []  # nothing at or after that time

        browser.find_element(By.LINK_TEXT, "Consumer groups").click()
        [g] = cells(browser, "groups")
        assert g[0] == "viewers" and g[1] == "Empty" and g[-1] == "2"
        browser.find_element(By.LINK_TEXT, "viewers").click()
        assert cells(browser, "lag") == [["shown", "0", "5", "7", "2"]]
        browser.save_screenshot(os.path.join(shots, "console-group.png"))

        browser.find_element(By.LINK_TEXT, "Connections").click()
        rows = cells(browser, "connections")
        assert any(r[2] == "viewer-1" and r[3] == "kafka-python" and r[5] == "User:ANONYMOUS" for r in rows)
        browser.save_screenshot(os.path.join(shots, "console-connections.png"))

        # ?refresh=1 reloads by itself: the lag grows on screen as records arrive.
        browser.get(base + "/console/groups/viewers?refresh=1")
        assert cells(browser, "lag")[0][4] == "2"
        for i in range(3):
            producer.send("shown", f"w{i}".encode(), partition=0).get(timeout=10)
        def lag_shown():
            try:
                return cells(browser, "lag")[0][4]
            except Exception:  # the page is reloading under us
                return None

        assert poll_until(lambda: lag_shown() == "5", 15, 0.5)

        def chart_last():  # the lag chart, sampled every 5 s
            try:
                return browser.find_element(By.CSS_SELECTOR, "svg.chart").get_attribute("data-last")
            except Exception:
                return None

        assert poll_until(lambda: chart_last() == "5.0", 20, 0.5)
        browser.save_screenshot(os.path.join(shots, "console-group-chart.png"))
    finally:
        consumer.close()
        producer.close()
    assert get(base + "/console/topics/absent")[0] == 404
    assert get(base + "/console/messages/absent/0")[0] == 404
    assert get(base + "/console/messages/shown/9")[0] == 404
    assert get(base + "/console/topics/%3Cscript%3E")[0] == 404
    assert "<script>" not in get(base + "/console/topics/%3Cscript%3E")[1].split("</style>")[1]
