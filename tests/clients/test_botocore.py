"""botocore (the AWS CLI's and boto3's core), unmodified, reading imds the way it reads EC2's IMDS.

botocore first PUTs `latest/api/token` (IMDSv2); 403/404/405 there mean "no IMDSv2" and it
falls back to plain GETs (IMDSv1). These tests pass either way: they never look at the token.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.utils import IMDSRegionProvider, InstanceMetadataFetcher, InstanceMetadataRegionFetcher

from conftest import INSTANCE_ID, Imds

USER_AGENT = "imds-client-tests"


def fetcher_args(imds: Imds) -> dict[str, Any]:
    """What botocore's own credential and region providers pass, with our endpoint configured."""
    return {
        "timeout": 2,
        "num_attempts": 1,
        "env": {},  # in particular, no AWS_EC2_METADATA_DISABLED
        "user_agent": USER_AGENT,
        "config": {"ec2_metadata_service_endpoint": f"{imds.guest_url}/"},
    }


def test_region_fetcher_derives_region_from_availability_zone(imds: Imds, instance: dict[str, Any]) -> None:
    fetcher = InstanceMetadataRegionFetcher(**fetcher_args(imds))
    assert fetcher.get_base_url() == f"{imds.guest_url}/"
    assert fetcher.retrieve_region() == "eu-west-1"


def test_region_provider_finds_endpoint_in_environment(
    imds: Imds, instance: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The path boto3 takes: a session whose config comes from AWS_* variables only."""
    for name in ("AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.guest_url)
    provider = IMDSRegionProvider(session=botocore.session.Session())
    assert provider.provide() == "eu-west-1"


def test_get_request_reads_instance_id(imds: Imds, instance: dict[str, Any]) -> None:
    """The request path botocore uses for every IMDS read: token (if any), then a GET."""
    fetcher = InstanceMetadataFetcher(**fetcher_args(imds))
    token = fetcher._fetch_metadata_token()
    response = fetcher._get_request(
        url_path="latest/meta-data/instance-id", retry_func=fetcher._default_retry, token=token
    )
    assert response.status_code == 200
    assert response.text == INSTANCE_ID


def test_instance_without_role_gets_no_credentials(
    imds: Imds, instance: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert "iam_role" not in instance
    fetcher = InstanceMetadataFetcher(**fetcher_args(imds))
    with caplog.at_level(logging.DEBUG, logger="botocore.utils"):
        assert fetcher.retrieve_iam_role_credentials() == {}
    # {} is also what a dead endpoint gives: check that imds answered "no role" as EC2 does (404).
    role_url = f"{imds.guest_url}/latest/meta-data/iam/security-credentials/"
    answers = [r.getMessage() for r in caplog.records if role_url in r.getMessage()]
    assert answers, f"botocore never logged an answer from {role_url}: {caplog.messages}"
    assert all("status code of 404" in answer for answer in answers), answers
