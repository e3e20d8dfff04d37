"""The console's write actions (broker/console/actions.py): what is refused before any
credential is checked, HTTP Basic parsing, the SCRAM password check, and the Kafka
request each form stands for. (End to end: tests/integration/test_console.py.)"""

import base64

import pytest

from odradek.broker import sasl
from odradek.broker.console import actions


def test_read_only_without_an_authorizer_and_the_header_is_needed():
    assert actions.refusal(False, {actions.HEADER: "1"}) == (403, actions.READ_ONLY)
    status, why = actions.refusal(True, {})
    assert status == 403 and actions.HEADER in why
    assert actions.refusal(True, {actions.HEADER: "1"}) is None


def test_basic_credentials():
    def header(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert actions.basic_credentials(header("alice:pa:ss")) == ("alice", "pa:ss")
    for bad in (None, "", "Bearer x", "Basic !!!", header("no-colon"), header(":pw"),
                "Basic " + base64.b64encode(b"\xff:x").decode()):
        assert actions.basic_credentials(bad) is None, bad


@pytest.mark.parametrize("mechanism", sorted(sasl.SCRAM_MECHANISMS))
def test_a_password_matches_only_its_own_credential(mechanism):
    credential = sasl.credential_from_password(mechanism, "secret")
    assert sasl.password_matches(mechanism, credential, "secret")
    assert not sasl.password_matches(mechanism, credential, "Secret")


def test_each_form_is_a_kafka_request():
    api_key, _, request = actions.request_for(["topics"], {"name": "t", "partitions": "3"})
    [topic] = request.topics
    assert (api_key, topic.name, topic.num_partitions, topic.replication_factor) == (19, "t", 3, -1)
    assert actions.request_for(["groups", "g", "delete"], {})[2].groups_names == ["g"]
    assert actions.request_for(["topics", "t", "delete"], {})[2].topic_names == ["t"]
    assert actions.request_for(["groups"], {}) is None
    for form in ({"name": ""}, {"name": "t", "partitions": "three"}):
        with pytest.raises(ValueError):
            actions.request_for(["topics"], form)
