"""The dispatcher's safety net: an exception that escapes a handler (a bug) is answered
as UNKNOWN_SERVER_ERROR where the response can carry it, and only closes the
connection where it cannot; either way the broker serves on."""

import dataclasses

import pytest
from kafka.protocol.admin import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse

from odradek.broker.handlers import HANDLERS, error_response, load_handlers
from odradek.protocol.errors import ErrorCode
from tests.rawclient import RawConnection
from tests.threaded_broker import ThreadedBroker


@pytest.fixture
def failing_handlers():
    """Make InitProducerId's, CreateTopics' and Metadata's handlers raise; restored afterwards."""
    saved = dict(load_handlers())

    async def fail(ctx, request):
        raise RuntimeError("a bug in a handler")
    for api in (InitProducerIdRequest, CreateTopicsRequest, MetadataRequest):
        HANDLERS[api.API_KEY] = dataclasses.replace(HANDLERS[api.API_KEY], handle=fail)
    yield
    HANDLERS.update(saved)


def test_a_failing_handler_answers_unknown_server_error_and_the_connection_stays(
        tmp_path, failing_handlers, capfd):
    b = ThreadedBroker(tmp_path / "data").start()
    init = InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000,
                                 producer_id=-1, producer_epoch=-1)
    versions = ApiVersionsRequest()  # v0: its response header is v0 like every version
    C = CreateTopicsRequest
    create = C(topics=[C.CreatableTopic(name=n, num_partitions=1, replication_factor=1, assignments=[],
                                        configs=[]) for n in ("a", "b")], timeout_ms=1000, validate_only=False)
    try:
        with RawConnection(b.bootstrap, timeout=5) as conn:
            assert conn.roundtrip(init, 2, InitProducerIdResponse).error_code == ErrorCode.UNKNOWN_SERVER_ERROR
            created = conn.roundtrip(create, 5, CreateTopicsResponse)  # an error per topic
            assert [(t.name, t.error_code) for t in created.topics] == [
                ("a", ErrorCode.UNKNOWN_SERVER_ERROR), ("b", ErrorCode.UNKNOWN_SERVER_ERROR)]
            assert conn.roundtrip(versions, 0, ApiVersionsResponse).error_code == ErrorCode.NONE
        # Metadata for every topic has no error code to carry: that connection closes, the
        # broker serves on.
        metadata = MetadataRequest(topics=None, allow_auto_topic_creation=False,
                                   include_cluster_authorized_operations=False,
                                   include_topic_authorized_operations=False)
        with RawConnection(b.bootstrap, timeout=5) as conn, pytest.raises(ConnectionError):
            conn.roundtrip(metadata, 9, MetadataResponse)
        with RawConnection(b.bootstrap, timeout=5) as conn:
            assert conn.roundtrip(versions, 0, ApiVersionsResponse).error_code == ErrorCode.NONE
    finally:
        b.stop()
    logged = capfd.readouterr()
    assert "handler_failed" in logged.out + logged.err
    assert "InitProducerIdRequest" in logged.out + logged.err  # the API is named


def test_every_error_response_encodes():
    for handler in load_handlers().values():
        for version in range(handler.min_version, handler.max_version + 1):
            response = error_response(handler.response_class, None, version, ErrorCode.UNKNOWN_SERVER_ERROR)
            if response is not None:
                response.encode(version=version)
    named = MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="t", topic_id=None)])
    for version in range(13):
        error_response(MetadataResponse, named, version, ErrorCode.UNKNOWN_SERVER_ERROR).encode(version=version)
