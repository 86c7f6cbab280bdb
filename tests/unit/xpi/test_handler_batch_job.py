"""The job path's handler (StartJob, CheckJob, FinishJob of the batch workflow) with its events/ sample:
what each step answers the workflow's `$.job`."""

from typing import Any

import pytest
from pydantic import SecretStr
from xpi import dependencies
from xpi.adapters.batch_jobs import CommercialClients
from xpi.domain.errors import CredentialsUnavailable, InternalError
from xpi.handlers import batch_job
from xpi.models.batch_jobs import BatchJob, JobState
from xpi.models.credentials import ApiKey, CommercialCredentials, IamKeys
from xpi.services import batch_job_path

from tests.helpers.aws import XpiResources
from tests.helpers.context import FakeLambdaContext
from tests.helpers.events import load_event

from .test_batch_jobs import TARGET, FakeJobRecords, FakeJobs


def _job(checks: int = 0) -> BatchJob:
    return BatchJob(
        batch_id="b-f4c9c481cfcfeaf6df45efcf",
        model_id="us.amazon.nova-lite-v1:0",
        client_request_token="xpi-b-f4c9c481cfcfeaf6df45efcf",
        job_name="xpi-b-f4c9c481cfcfeaf6df45efcf",
        input_uri="s3://bucket/xpi/b-f4c9c481cfcfeaf6df45efcf/input/records.jsonl",
        output_uri="s3://bucket/xpi/b-f4c9c481cfcfeaf6df45efcf/output/",
        kms_key_id=TARGET.kms_key_id,
        records=7,
        job_arn="arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/j0",
        status="Submitted",
        checks=checks,
    )


def _ports(jobs: FakeJobs) -> batch_job_path.JobPorts:
    unused: Any = None  # a look at a job reads nothing of the batch
    return batch_job_path.JobPorts(
        table=unused,
        objects=unused,
        job_records=FakeJobRecords(),
        commercial=unused,
        jobs=jobs,
        target=TARGET,
        events=unused,
    )


def test_without_a_threshold_the_sample_start_takes_no_job_and_builds_no_commercial_client(
    aws: XpiResources, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the default BatchJobMinLines (0) and no commercial side configured at all
    def no_ports() -> batch_job_path.JobPorts:
        raise AssertionError("the job ports were built for a stack without jobs")

    monkeypatch.setattr(dependencies, "batch_job_ports", no_ports)

    # WHEN the workflow's StartJob runs
    answer = batch_job.handler(load_event("batch/job/start.json"), lambda_context)

    # THEN the batch runs on-demand as before
    assert JobState.model_validate(answer) == JobState(submitted=False)


@pytest.mark.parametrize(("status", "finished"), [("InProgress", False), ("Completed", True)])
def test_check_looks_once_and_answers_the_next_wait_capped(
    aws: XpiResources,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    status: str,
    finished: bool,
) -> None:
    # GIVEN a job looked at five times already (the schedule's next wait: 900 s) and a cap of 300 s
    jobs = FakeJobs()
    jobs.statuses = [status]
    monkeypatch.setattr(dependencies, "batch_job_ports", lambda: _ports(jobs))
    monkeypatch.setenv("BATCH_JOB_MAX_WAIT_S", "300")

    # WHEN CheckJob runs
    answer = JobState.model_validate(
        batch_job.handler({"step": "check", "job": _job(checks=4).model_dump(mode="json")}, lambda_context)
    )

    # THEN one look, counted on the job, and the wait before the next one at most the cap
    assert (answer.submitted, answer.finished) == (True, finished)
    assert answer.job is not None and (answer.job.status, answer.job.checks) == (status, 5)
    assert answer.wait_s == (0 if finished else 300)
    assert jobs.statuses == []


def test_a_step_the_workflow_does_not_have_is_refused(
    aws: XpiResources, lambda_context: FakeLambdaContext
) -> None:
    with pytest.raises(InternalError):
        batch_job.handler({"step": "stop", "batch_id": "b-1"}, lambda_context)


class _Credentials:
    def __init__(self, *secrets: Any) -> None:
        self.versions = list(secrets)

    def get(self, *, refresh: bool = False) -> CommercialCredentials:
        version, secret = self.versions[0]
        return CommercialCredentials(version_id=version, secret=secret)


def test_commercial_clients_sign_with_the_access_key_and_follow_its_rotation() -> None:
    keys = IamKeys(aws_access_key_id="AKIAFIRST", aws_secret_access_key=SecretStr("first"))
    credentials = _Credentials(("v1", keys))
    clients = CommercialClients(credentials, region="us-east-1", s3_endpoint="http://127.0.0.1:1")

    s3 = clients.client("s3")
    assert clients.client("s3") is s3  # reused while the version holds
    assert s3.meta.endpoint_url == "http://127.0.0.1:1"
    assert s3._request_signer._credentials.access_key == "AKIAFIRST"
    assert clients.client("bedrock").meta.endpoint_url == "https://bedrock.us-east-1.amazonaws.com"

    credentials.versions = [("v2", keys.model_copy(update={"aws_access_key_id": "AKIASECOND"}))]
    rotated = clients.client("s3")
    assert rotated is not s3 and rotated._request_signer._credentials.access_key == "AKIASECOND"


def test_commercial_clients_refuse_a_bearer_api_key() -> None:
    api_key = ApiKey(type="api_key", api_key=SecretStr("ABSK-not-for-the-job-api"))
    clients = CommercialClients(_Credentials(("v1", api_key)), region="us-east-1")

    with pytest.raises(CredentialsUnavailable):
        clients.client("bedrock")
