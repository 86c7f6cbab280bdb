"""moto's server on the local stack keeps each client's connection open (tools/xpi_tools/local/
keep_alive.py), and every answer still arrives whole on it."""

import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer
from xpi_tools.local.keep_alive import enable_keep_alive


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_server() -> Iterator[tuple[str, list[int]]]:
    """moto's threaded server with keep-alive, and the client port of every request it serves."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    enable_keep_alive(server._server)
    ports: list[int] = []
    app = server._server.app

    def recording(environ: dict[str, Any], start_response: Any) -> Any:
        ports.append(int(environ["REMOTE_PORT"]))
        # each answer leaves at once, not after the client's delayed ACK of the previous segment
        assert environ["werkzeug.socket"].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        return app(environ, start_response)

    server._server.app = recording
    yield f"http://127.0.0.1:{port}", ports
    server.stop()


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def test_one_client_makes_every_call_on_one_connection(moto_server: tuple[str, list[int]]) -> None:
    url, ports = moto_server
    dynamodb = _client("dynamodb", url)

    # WHEN a client makes several calls, one after another
    dynamodb.create_table(
        TableName="t",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for number in range(5):
        dynamodb.put_item(TableName="t", Item={"pk": {"S": f"k{number}"}, "v": {"N": str(number)}})
    item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "k3"}})["Item"]

    # THEN every answer was whole, and all came on the one connection the client opened
    assert item == {"pk": {"S": "k3"}, "v": {"N": "3"}}
    assert len(ports) == 7
    assert len(set(ports)) == 1


def test_bodies_heads_and_empty_answers_keep_the_connection_in_step(
    moto_server: tuple[str, list[int]],
) -> None:
    url, ports = moto_server
    s3 = _client("s3", url)
    body = b"x" * 300_000

    # WHEN a body goes up, its HEAD (a length, no body) and GET come back, and a delete answers 204
    s3.create_bucket(Bucket="keep-alive-bucket")
    s3.put_object(Bucket="keep-alive-bucket", Key="k", Body=body)
    head = s3.head_object(Bucket="keep-alive-bucket", Key="k")
    got = s3.get_object(Bucket="keep-alive-bucket", Key="k")["Body"].read()
    s3.delete_object(Bucket="keep-alive-bucket", Key="k")
    listed = s3.list_objects_v2(Bucket="keep-alive-bucket")

    # THEN each answer is read as sent, the next request after each still understood, on one connection
    assert head["ContentLength"] == len(body)
    assert got == body
    assert listed["KeyCount"] == 0
    assert len(set(ports)) == 1
