"""SPEC 9 "Outbound URLs": save-time and connect-time checks."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from shared.runner.outbound import (
    OutboundURLRefused,
    check_url,
    resolve_and_check,
    resolve_and_check_async,
)

ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1:8080/v1",
    "http://[fd00:ec2::254]/",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/",  # IPv4-mapped
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://2852039166/",  # 169.254.169.254 written as one integer
    "http://0xa9.0xfe.0xa9.0xfe/",  # ... and in hex
]
PRIVATE = [
    "http://127.0.0.1:11434/v1",
    "http://127.1/",
    "http://10.1.2.3/v1",
    "http://172.16.0.1/",
    "https://192.168.1.10/v1",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://[::1]:8000/v1",
    "http://[fc00::1]/",  # unique-local
    "http://[fd12:3456::1]/",
    "http://0.0.0.0:8000/",
    "http://[::]/",
    "http://localhost:11434/v1",
    "http://api.localhost/",
]
PUBLIC = ["https://api.openai.com/v1", "https://8.8.8.8/v1", "http://[2001:4860:4860::8888]/"]


@pytest.mark.parametrize("url", ALWAYS_REFUSED)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_and_link_local_are_always_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(OutboundURLRefused) as caught:
        check_url(url, "base_url", allow_private)
    assert caught.value.field == "base_url"
    assert str(caught.value).startswith("base_url: ")
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("url", PRIVATE)
def test_private_addresses_only_when_allowed(url: str) -> None:
    with pytest.raises(OutboundURLRefused, match="private addresses are not allowed"):
        check_url(url, "base_url", allow_private=False)
    check_url(url, "base_url", allow_private=True)


@pytest.mark.parametrize("url", PUBLIC)
def test_public_addresses_are_allowed(url: str) -> None:
    check_url(url, "base_url", allow_private=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("example.com/v1", "http or https"),
        ("http:///v1", "must name a host"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_scheme_and_host_are_required(url: str, reason: str) -> None:
    with pytest.raises(OutboundURLRefused, match=reason) as caught:
        check_url(url, "mcp_url", allow_private=True)
    assert caught.value.field == "mcp_url"


def test_localhost_is_resolved_and_refused_unless_private_is_allowed() -> None:
    with pytest.raises(OutboundURLRefused, match="private addresses are not allowed"):
        resolve_and_check("http://localhost:1234/v1", allow_private=False)
    addresses = resolve_and_check("http://localhost:1234/v1", allow_private=True)
    assert addresses and all(a in ("127.0.0.1", "::1") for a in addresses)


def test_literal_addresses_resolve_without_dns() -> None:
    assert resolve_and_check("https://8.8.8.8/v1") == ["8.8.8.8"]
    with pytest.raises(OutboundURLRefused):
        resolve_and_check("http://10.0.0.1/v1")


def _fake_dns(answers: dict[str, list[str]]) -> Any:
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host in answers:
            return [
                (
                    socket.AF_INET6 if ":" in ip else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (ip, port) if ":" not in ip else (ip, port, 0, 0),
                )
                for ip in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    return getaddrinfo


def test_a_name_resolving_to_metadata_is_refused_at_connect_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        _fake_dns({"innocent.example": ["93.184.216.34", "169.254.169.254"]}),
    )
    check_url("http://innocent.example/v1", "base_url", allow_private=False)  # saving is fine
    with pytest.raises(OutboundURLRefused, match=r"innocent\.example resolves to") as caught:
        resolve_and_check("http://innocent.example/v1", allow_private=True)
    assert caught.value.field == "base_url"


def test_a_name_resolving_to_a_private_address_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_dns({"intranet.example": ["10.0.0.7"]}))
    with pytest.raises(OutboundURLRefused):
        resolve_and_check("http://intranet.example/v1", allow_private=False)
    assert resolve_and_check("http://intranet.example/v1", allow_private=True) == ["10.0.0.7"]


def test_the_async_check_uses_the_loops_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _fake_dns({"rebind.example": ["fe80::1"]}))
    with pytest.raises(OutboundURLRefused):
        asyncio.run(resolve_and_check_async("http://rebind.example/", allow_private=True))
    assert asyncio.run(resolve_and_check_async("http://localhost:1/", allow_private=True))


def test_an_unresolvable_name_is_a_connection_failure_not_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(socket.gaierror):
        resolve_and_check("http://nowhere.example/")
