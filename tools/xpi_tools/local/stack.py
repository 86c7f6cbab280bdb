"""The local stack: the real template, offline, on loopback.

    moto server (GovCloud-side AWS API, executing Step Functions)
      <- CloudFormation stack deployed from `sam build` output (deploy.py)
      -> every Lambda invoke handed to a pool of real Lambda runtime processes (RIE + awslambdaric)
    SqsPoller (the SQS event source mapping)      Bedrock emulator (the commercial partition)
                                                  commercial moto server (its S3 and KMS, batch jobs)

Everything starts in one process and stops with it: `LocalStack.stop()`, Ctrl-C and SIGTERM all end
the moto servers, the pollers, the emulator and every runtime process group.
"""

import contextlib
import json
import logging
import os
import secrets
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from xpi_tools.certificates import issue, make_ca
from xpi_tools.emulator import BedrockEmulator, EmulatorConfig
from xpi_tools.emulator.config import AccessKey, BatchSettings, RolesAnywhere
from xpi_tools.emulator.config import ApiKey as EmulatorApiKey
from xpi_tools.local.commercial_aws import CommercialAws, CommercialBatch
from xpi_tools.local.deploy import Deployment, code_dir_for, deploy
from xpi_tools.local.faults import LocalControl, LocalFaults
from xpi_tools.local.govcloud_bedrock import MotoAccountPrincipals
from xpi_tools.local.iam_authorization import Authorization, CallLog, missing_poller_permissions
from xpi_tools.local.keep_alive import enable_keep_alive
from xpi_tools.local.lambda_runtime import FunctionSpec, InvokeResult, LambdaRuntimePool, default_rie_dir
from xpi_tools.local.monitoring import LocalMonitoring, TooManyRequests
from xpi_tools.local.moto_patches import (
    check_moto_version,
    enable_iam_enforcement,
    patch_compressed_signatures,
    patch_deleted_receipts,
    patch_event_paths,
    patch_finished_environments,
    patch_iam_evaluation,
    patch_instance_tracking,
    patch_interpreter_clients,
    patch_lambda_invoke,
    patch_lambda_service_errors,
    patch_message_move_task,
    patch_request_dispatch,
    patch_rotate_secret,
    patch_sender_id,
    patch_signing_keys_and_locks,
    patch_thread_list,
    patch_transactions,
    patch_usage_metering,
)
from xpi_tools.local.principals import (
    LAMBDA_SERVICE,
    OPERATOR_KEYS,
    STATES_SERVICE,
    RoleCredentials,
    RoleSessions,
    create_operator,
    role_documents,
)
from xpi_tools.local.sqs_poller import MappingSpec, SqsPoller
from xpi_tools.local.usage import UsageLog, set_current_principal

_LOG = logging.getLogger(__name__)
ACCOUNT_ID = "123456789012"  # moto's default account
SLOW_STOP_S = 2.0  # a component's stop that takes longer is logged (Ctrl-C should take seconds)
LOCAL_CREDENTIALS = OPERATOR_KEYS  # the local operator's keys (principals.py)
# What the local profile changes from the template's defaults, and why:
LOCAL_PARAMETERS = {
    "Architecture": "x86_64" if os.uname().machine == "x86_64" else "arm64",  # the host's, for the RIE
    "RequestsVisibilityTimeout": "4",  # redrive to the DLQ in seconds, not minutes
    "LogRetentionDays": "30",
    "BatchHeartbeatSeconds": "10",  # a lost batch progress message is reconciled in seconds
    # The commercial side of batch jobs is configured (below), so the job path would be in force: off
    # here, so every other test's and benchmark's batch runs on-demand (tests/integration/test_batch_jobs.py
    # starts a stack of its own with it on).
    "BatchJobMinLines": "0",
    "BatchJobMaxCheckSeconds": "1",  # a batch job's looks a second apart, not minutes (the emulator's jobs)
    "CreateExampleSubscriber": "true",  # the demo and the tests read every result from it (off on AWS)
    "PreviousKeyGraceSeconds": "2",  # a rotation's old key is deleted in seconds, not a minute
    # Paced, so every Bedrock call goes through the shared bucket table, at quotas the local stack never
    # reaches (the emulator is unlimited by default); bench/bench_quota.py sets binding ones.
    "BedrockRequestsPerMinute": "100000",
    "BedrockTokensPerMinute": "100000000",
    # Alarms a test drives in seconds: a spike of 3 blocked requests, a sync p95 over 2 s (the emulator's
    # latency makes one), where the defaults (20, 15 s) suit production traffic.
    "BlockedRequestsAlarmThreshold": "3",
    "SyncLatencyP95AlarmMilliseconds": "2000",
}


COMMERCIAL_ACCOUNT = "123456789012"  # the emulator's account


# The emulator's commercial users in API key mode: the Bedrock user, and the one that manages its keys.
BEDROCK_USER = "xpi-bedrock"
# The commercial account's service role for batch inference jobs (the emulator maps it to a key there).
BATCH_ROLE = "xpi-bedrock-batch"
KEY_MANAGER_USER = "xpi-key-manager"


@dataclass(frozen=True)
class CommercialSide:
    """What the stack's commercial side needs from the deploy: parameters, and the secret to fill."""

    parameters: dict[str, str]
    secret_output: str
    secret_value: str = field(repr=False)
    # Further secrets to fill, by the stack output naming each (the API key manager's access key).
    more_secrets: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class Endpoints:
    """What a client needs to talk to the local stack (written to the state file as JSON)."""

    region: str
    aws: str
    bedrock: str
    bedrock_region: str
    emulator_control: str
    stack_name: str
    outputs: dict[str, str]
    resources: dict[str, str]
    pid: int = field(default_factory=os.getpid)
    # the local API Gateway, the dashboard's signing proxy, the local API principals' keys.
    api: str = ""
    dashboard: str = ""
    api_credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    # Each function's execution role credentials (logical id -> AWS_* variables), for `sam local invoke`.
    function_credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    call_log: str = ""  # the IAM decisions of this stack, one JSON line each (`xpi iam usage`)
    usage_log: str = ""  # every billable unit this stack served, one JSON line each (bench/bench_cost.py)
    # the stack's control endpoint: runtime kills, the AWS API's outage, memory (faults.py)
    control: str = ""
    # GovCloud's own Bedrock (its emulator, in the stack's region; also its control endpoint)
    govcloud_bedrock: str = ""
    # The commercial account's S3 and KMS for batch inference jobs (commercial_aws.py): url, region,
    # bucket, kms_key_arn, role_arn (the jobs' service role).
    commercial_batch: dict[str, str] = field(default_factory=dict)
    # The dashboard's sign-in (DashboardSignIn=oidc): the page behind the API, the local OIDC provider,
    # the local Cognito, and the provider's test users with their passwords (xpi_tools.local.sign_in).
    sign_in: dict[str, Any] = field(default_factory=dict)

    def client_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **LOCAL_CREDENTIALS,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalStack:
    def __init__(
        self,
        project_root: Path,
        region: str = "us-gov-west-1",
        stack_name: str = "xpi-local",
        commercial_region: str = "us-east-1",
        runtimes_per_function: int = 2,
        *,
        call_log_dir: Path | None = None,
        commercial_credentials: str = "secret",
        parameters: dict[str, str] | None = None,
        poller_concurrency: int = 1,
        trust_ca: Path | None = None,
    ) -> None:
        # A CA certificate (PEM) the functions trust instead of the public ones, for https endpoints of
        # the test's own (the egress paths behind network namespaces, xpi_tools.local.netns).
        self._trust_ca = trust_ca
        # "secret": an access key of the emulator's commercial user in the credentials secret;
        # "roles-anywhere": a certificate of a local CA, exchanged for temporary credentials (no key).
        self.commercial_credentials = commercial_credentials
        self.root = project_root
        self.region = region
        self.stack_name = stack_name
        self.commercial_region = commercial_region
        self.work_dir = project_root / ".xpi" / "local"
        self.call_log_dir = call_log_dir or Path(
            os.environ.get("XPI_IAM_CALL_LOG_DIR", project_root / ".xpi" / "iam-calls")
        )
        self._runtimes_per_function = runtimes_per_function
        # Template parameters over LOCAL_PARAMETERS, and SQS pollers per mapping (benchmarks raise them).
        self._parameters = dict(parameters or {})
        self._poller_concurrency = poller_concurrency
        self._server: Any = None
        self._aws_url = ""
        self._emulator: BedrockEmulator | None = None
        self._govcloud: BedrockEmulator | None = None
        self._commercial_aws: CommercialAws | None = None
        self.commercial_batch: CommercialBatch | None = None
        self._pool: LambdaRuntimePool | None = None
        self._poller: SqsPoller | None = None
        self._restores: list[Callable[[], None]] = []
        self._call_log: CallLog | None = None
        self.usage: UsageLog | None = None  # what AWS would bill for (xpi_tools.local.usage)
        self.faults = LocalFaults()
        self._control: LocalControl | None = None
        self._api: Any = None  # local API Gateway
        self.monitoring: LocalMonitoring | None = None  # CloudWatch's metrics and alarm evaluation
        self._dashboard: Any = None  # dashboard signing proxy
        self._cognito: Any = None  # the dashboard sign-in's local Cognito and OIDC provider (sign_in.py)
        self._idp: Any = None
        self.endpoints: Endpoints | None = None
        self.deployment: Deployment | None = None
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, build_dir: Path | None = None) -> Endpoints:
        started = time.perf_counter()
        try:
            return self._start(build_dir or self.root / ".aws-sam" / "build", started)
        except BaseException:
            self.stop()
            raise

    def _start_moto(self, port: int) -> None:
        from moto.server import ThreadedMotoServer

        # moto's Step Functions interpreter calls the other services at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        # werkzeug logs every request moto serves (thousands a minute under load): warnings only.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        enable_keep_alive(self._server._server)  # one connection per client, as AWS's endpoints allow
        # the fault hooks in front of moto (faults.py): inert until a fault is armed
        self._server._server.app = self.faults.wrap(self._server._server.app)

    def _start(self, build_dir: Path, started: float) -> Endpoints:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        aws_url = self._aws_url = f"http://127.0.0.1:{port}"
        # The commercial account's moto server starts in its own process, and is provisioned on a thread
        # of its own, while this stack starts and deploys (its URL and the role's key are known already).
        commercial_batch = self._launch_commercial_aws()
        self._start_moto(port)
        _post_json(f"{aws_url}/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        self.timings["moto_s"] = time.perf_counter() - started

        commercial = self._start_emulator()
        assert self._emulator is not None
        self._govcloud = self._start_govcloud_bedrock()
        self._pool = self._runtime_pool(aws_url)
        sessions = RoleSessions(ACCOUNT_ID, self.region)
        self._patch_moto(sessions)

        # The commercial side of batch jobs (its bucket, KMS key and the jobs' role) is a parameter of the
        # deploy: provisioned on its own thread meanwhile, ready by now.
        self.commercial_batch = commercial_batch.result(timeout=120)
        parameters = {
            **LOCAL_PARAMETERS,
            "CommercialBatchBucket": self.commercial_batch.bucket,
            "CommercialBatchKmsKeyArn": self.commercial_batch.kms_key_arn,
            "CommercialBatchRoleArn": self.commercial_batch.role_arn,
            "CommercialS3Endpoint": self.commercial_batch.url,
            "CommercialRegion": self.commercial_region,
            "CommercialBedrockEndpoint": self._emulator.url,
            "CommercialIamEndpoint": self._emulator.url,  # the emulator plays commercial IAM too
            "GovCloudBedrockEndpoint": self._govcloud.url,
            **commercial.parameters,
            **self._parameters,
        }
        os.environ.update({"AWS_DEFAULT_REGION": self.region, **LOCAL_CREDENTIALS})
        cognito_ids = self._start_sign_in(parameters, aws_url)
        deploy_started = time.perf_counter()
        self.deployment, cfn = deploy(
            build_dir,
            stack_name=self.stack_name,
            parameters=parameters,
            region=self.region,
            endpoint_url=aws_url,
            cache_dir=self.work_dir / "zips",
            cognito_ids=cognito_ids,
        )
        self.timings["deploy_s"] = time.perf_counter() - deploy_started

        session = boto3.Session(
            region_name=self.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        # The operator's one manual step after a real deploy: put the commercial keys in the secret (or,
        # with Roles Anywhere, the invoke step's certificate and key in the certificate secret).
        secrets = session.client("secretsmanager", endpoint_url=aws_url)
        for output, value in {
            commercial.secret_output: commercial.secret_value,
            **commercial.more_secrets,
        }.items():
            secrets.put_secret_value(SecretId=self.deployment.outputs[output], SecretString=value)
        # From here on every request is signed by a known principal and allowed by its IAM policies:
        # the operator (these "testing" keys) can do anything, each role only what the template grants.
        create_operator(ACCOUNT_ID, self.region)
        function_roles = self._function_roles(session, aws_url)
        self._call_log = CallLog(
            self.call_log_dir / f"{self.stack_name}-{os.getpid()}-{time.time_ns()}.jsonl",
            roles={
                physical: logical
                for logical, physical in self.deployment.resources.items()
                if logical.endswith("Role")
            },
        )
        self._restores.append(enable_iam_enforcement())
        function_credentials = {
            logical_id: sessions.credentials(role_arn, LAMBDA_SERVICE, function_name)
            for logical_id, (function_name, role_arn) in function_roles.items()
        }
        # Like Lambda's pollers, the mappings invoke through the Lambda API (and so through the seam).
        lambda_api = session.client(
            "lambda", endpoint_url=aws_url, config=Config(read_timeout=960, retries={"total_max_attempts": 1})
        )

        def invoke_through_lambda_api(function_name: str, payload: bytes) -> InvokeResult:
            started = time.perf_counter()
            response = lambda_api.invoke(FunctionName=function_name, Payload=payload)
            return InvokeResult(
                payload=response["Payload"].read(),
                function_error=response.get("FunctionError"),
                duration_ms=(time.perf_counter() - started) * 1000,
                max_memory_mb=None,
            )

        physical_to_logical = {physical: logical for logical, physical in self.deployment.resources.items()}

        def poller_client(mapping: MappingSpec) -> Any:
            """Lambda's pollers receive and delete with the function's execution role."""
            role = function_credentials[physical_to_logical[mapping.function_name]]
            client = session.client(
                "sqs",
                endpoint_url=aws_url,
                aws_access_key_id=role.access_key_id,
                aws_secret_access_key=role.secret_access_key,
                aws_session_token=role.session_token,
            )
            client.meta.events.register("after-call.sqs.ReceiveMessage", self._record_receive)
            return client

        for mapping in self.deployment.mappings:  # checked by Lambda when CloudFormation creates it
            _check_mapping(
                mapping, function_roles[physical_to_logical[mapping.function_name]][1], self.region
            )
            # Lambda reads the queue's attributes as the role when it takes the mapping on, too.
            poller_client(mapping).get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["All"])

        control_url = self._start_control(function_roles, function_credentials)
        self._poller = SqsPoller(
            poller_client,
            invoke_through_lambda_api,
            self.deployment.mappings,
            concurrency_per_mapping=self._poller_concurrency,
        )
        self._poller.start()
        api_url, dashboard_url, api_credentials = self._start_api(session, aws_url, build_dir)
        sign_in = self._finish_sign_in(cfn, api_url)
        self._start_monitoring(session, aws_url)

        self.endpoints = Endpoints(
            region=self.region,
            aws=aws_url,
            bedrock=self._emulator.url,
            bedrock_region=self.commercial_region,
            emulator_control=self._emulator.url,
            govcloud_bedrock=self._govcloud.url,
            commercial_batch=self.commercial_batch.public() if self.commercial_batch else {},
            stack_name=self.stack_name,
            outputs=self.deployment.outputs,
            resources=self.deployment.resources,
            api=api_url,
            dashboard=dashboard_url,
            api_credentials=api_credentials,
            function_credentials={k: v.environment() for k, v in function_credentials.items()},
            call_log=str(self._call_log.path),
            usage_log=str(self.usage.path) if self.usage else "",
            control=control_url,
            sign_in=sign_in,
        )
        self.timings["up_s"] = time.perf_counter() - started
        return self.endpoints

    def _start_govcloud_bedrock(self) -> BedrockEmulator:
        """GovCloud's own Bedrock, for the GovCloud-native models (its callers: the functions' roles)."""
        return BedrockEmulator(
            EmulatorConfig(
                host="127.0.0.1",
                port=0,
                region=self.region,
                account_id=ACCOUNT_ID,
                account_principals=MotoAccountPrincipals(ACCOUNT_ID, self.region, self._record_iam_decision),
            )
        ).start()

    def _runtime_pool(self, aws_url: str) -> LambdaRuntimePool:
        return LambdaRuntimePool(
            python=self._runtime_python(),
            rie_dir=default_rie_dir(),
            aws_env={  # credentials: each function's own role's (see _patch_moto)
                "AWS_ENDPOINT_URL": aws_url,
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                # No X-Ray daemon here: traces would only produce "segment not found" noise.
                "POWERTOOLS_TRACE_DISABLED": "true",
                # botocore's CA bundle, and OpenSSL's (urllib3: the egress path health probe)
                **(
                    {"AWS_CA_BUNDLE": str(self._trust_ca), "SSL_CERT_FILE": str(self._trust_ca)}
                    if self._trust_ca
                    else {}
                ),
            },
            max_per_function=self._runtimes_per_function,
            log_dir=self.work_dir / "logs",
            kill_after_return=self.faults.take_return_kill,
        )

    def _start_api(
        self, session: boto3.Session, aws_url: str, build_dir: Path
    ) -> tuple[str, str, dict[str, dict[str, str]]]:
        """moto's API Gateway does not invoke Lambda: a local API Gateway (SigV4 checked
        against moto's IAM) fronts the API function, and the dashboard's signing proxy fronts it."""
        from botocore.credentials import Credentials

        from xpi_tools.dashboard.server import DashboardServer
        from xpi_tools.local.apigateway import start_local_api

        assert self.deployment is not None
        if "ApiId" not in self.deployment.outputs:
            return "", "", {}

        from moto.awslambda.models import lambda_backends

        functions = lambda_backends[ACCOUNT_ID][self.region]

        def invoke(function_name: str, payload: bytes) -> tuple[bytes, str | None]:
            """The integration's invoke, as API Gateway makes it: inside AWS, from the Lambda service on,
            not as an HTTP call signed by an administrator and evaluated against their IAM policies
            (which API Gateway never is). moto's Lambda service resolves the function and the runtime
            pool runs it, exactly as for the Invoke API (gap 6)."""
            if self.usage is not None:  # what API Gateway bills: a request that reached its integration
                self.usage.write("api", function=function_name)
            response_headers: dict[str, str] = {}
            answer = functions.get_function(function_name).invoke(payload.decode(), {}, response_headers)
            data = answer if isinstance(answer, bytes) else answer.encode()
            return data, response_headers.get("x-amz-function-error")

        self._api, credentials = start_local_api(
            session,
            aws_url=aws_url,
            outputs=self.deployment.outputs,
            build_dir=build_dir,
            region=self.region,
            account_id=ACCOUNT_ID,
            invoke=invoke,
            stack_name=self.stack_name,
        )
        operator = credentials["operator"]
        self._dashboard = DashboardServer(
            self._api.url,
            self.region,
            Credentials(operator["aws_access_key_id"], operator["aws_secret_access_key"]),
        )
        return self._api.url, self._dashboard.start(), credentials

    def _start_sign_in(self, parameters: dict[str, str], aws_url: str) -> dict[str, str]:
        """With DashboardSignIn=oidc (the local default once `make idp` installed the provider): the local
        Cognito's port, then the provider (given its callback), its client secret in Secrets Manager, and
        the parameters naming them. Answers the ids the local Cognito plays the Cognito resources with."""
        from xpi_tools.local.sign_in import IDP_CLIENT_ID, LocalCognito, LocalIdentityProvider, idp_installed

        if "DashboardSignIn" not in parameters and idp_installed():
            parameters["DashboardSignIn"] = "oidc"
        if parameters.get("DashboardSignIn") != "oidc":
            return {}
        self._cognito = LocalCognito(self.region)
        cognito_url = self._cognito.start()
        self._idp = LocalIdentityProvider(self.work_dir, redirect_uri=cognito_url + "/oauth2/idpresponse")
        self._cognito.issuer = self._idp.start()
        self._cognito.idp_client_secret = self._idp.client_secret
        secretsmanager = boto3.Session(
            region_name=self.region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        ).client("secretsmanager", endpoint_url=aws_url)
        secret_arn = secretsmanager.create_secret(
            Name=f"{self.stack_name}-dashboard-idp-client", SecretString=self._idp.client_secret
        )["ARN"]
        parameters.update(
            DashboardIdpIssuer=self._cognito.issuer,
            DashboardIdpClientId=IDP_CLIENT_ID,
            DashboardIdpClientSecretArn=secret_arn,
            DashboardSignInDomain="xpi-local",
        )
        return {
            "DashboardUserPool": self._cognito.user_pool_id,
            "DashboardUserPoolClient": self._cognito.client_id,
            "DashboardIdentityPool": self._cognito.identity_pool_id,
            "DashboardUserPoolDomain": "xpi-local",
        }

    def _finish_sign_in(self, cfn: dict[str, Any], api_url: str) -> dict[str, Any]:
        """The local Cognito wired to what was deployed: the identity pool's rules (role ARNs resolved),
        the trigger function (run as the Lambda service runs it for Cognito), the roles' trust policies,
        moto's STS; and the page served behind the local API Gateway with its sign-in.json."""
        from moto.awslambda.models import lambda_backends
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends
        from moto.utilities.utils import get_partition

        from xpi_tools.local.deploy import COGNITO_METADATA
        from xpi_tools.local.sign_in import role_rules

        if self._cognito is None or self._idp is None or self._api is None or self.deployment is None:
            return {}
        cognito, deployment, partition = self._cognito, self.deployment, get_partition(self.region)
        iam = iam_backends[ACCOUNT_ID][partition]

        def resolve(value: Any) -> Any:  # {"Fn::GetAtt": [<role>, "Arn"]}: the deployed role's ARN
            role_name = deployment.resources[value["Fn::GetAtt"][0]]
            return iam.get_role(role_name).arn

        def run_trigger(event: dict[str, Any]) -> dict[str, Any]:
            function = lambda_backends[ACCOUNT_ID][self.region].get_function(
                deployment.outputs["DashboardSignInFunctionName"]
            )
            headers: dict[str, str] = {}
            answer = function.invoke(json.dumps(event), {}, headers)
            if headers.get("x-amz-function-error"):
                raise RuntimeError(f"the pre token generation trigger failed: {answer!r}")
            return dict(json.loads(answer))

        def role_trust(role_arn: str) -> dict[str, Any]:
            document = iam.get_role(role_arn.rsplit("/", 1)[-1]).assume_role_policy_document
            return dict(json.loads(document) if isinstance(document, str) else document)

        def mint_session(role_arn: str, session_name: str) -> dict[str, str]:
            assumed = sts_backends[ACCOUNT_ID][partition].assume_role_with_web_identity(
                region_name=self.region, role_session_name=session_name, role_arn=role_arn,
                policy=None, duration=3600, external_id=None,
            )  # fmt: skip
            return {
                "access_key_id": assumed.access_key_id,
                "secret_access_key": assumed.secret_access_key,
                "session_token": assumed.session_token,
            }

        cognito.rules = role_rules({"Resources": cfn["Metadata"][COGNITO_METADATA]}, resolve)
        cognito.run_trigger, cognito.role_trust, cognito.mint_session = run_trigger, role_trust, mint_session
        cognito.dashboard_url = f"{api_url}/dashboard/index.html"
        # The page is the deployed DashboardPageFunction behind the local API Gateway's GET /dashboard/{file};
        # only the Cognito endpoints its environment names are the local Cognito's (gap 35).
        page = lambda_backends[ACCOUNT_ID][self.region].get_function(
            deployment.outputs["DashboardPageFunctionName"]
        )
        page.environment_vars = {**(page.environment_vars or {}), **cognito.page_environment()}
        return {
            "dashboard": cognito.dashboard_url,
            "cognito": cognito.url,
            "idp": self._idp.issuer,
            "users": self._idp.users,
        }

    def _start_monitoring(self, session: boto3.Session, aws_url: str) -> None:
        """Metrics into moto (the runtimes' EMF lines, Lambda's, SQS's, Step Functions') and the
        template's alarms evaluated, as CloudWatch would (monitoring.py)."""
        sqs, stepfunctions = (
            session.client("sqs", endpoint_url=aws_url),
            session.client("stepfunctions", endpoint_url=aws_url),
        )
        self.monitoring = LocalMonitoring(
            session,
            aws_url,
            account_id=ACCOUNT_ID,
            log_dir=self.work_dir / "logs",
            queue_urls=sqs.list_queues().get("QueueUrls", []),
            state_machine_arns=[
                m["stateMachineArn"] for m in stepfunctions.list_state_machines()["stateMachines"]
            ],
        )
        self.monitoring.start()

    def _start_control(
        self, function_roles: dict[str, tuple[str, str]], function_credentials: dict[str, RoleCredentials]
    ) -> str:
        """The fault hooks learn the deployed functions; the control endpoint starts (faults.py)."""
        assert self._pool is not None
        self.faults.attach(
            self._pool.kill_caller,
            function_keys={
                function_credentials[logical_id].access_key_id: function_name
                for logical_id, (function_name, _) in function_roles.items()
            },
            function_names={logical_id: name for logical_id, (name, _) in function_roles.items()},
        )
        self._control = LocalControl(self.faults, glue=self._glue_parts)
        return self._control.start()

    def _glue_parts(self) -> dict[str, Any]:
        """The stack's own parts (not AWS state) the control endpoint's GET /memory sizes, by name."""
        emulators = {"emulator": self._emulator, "govcloud_emulator": self._govcloud}
        return {
            "iam_call_log": self._call_log,
            "usage_log": self.usage,
            "monitoring": self.monitoring,
            "runtime_pool": self._pool,
            "sqs_poller": self._poller,
            "api_gateway": self._api,
            "faults": self.faults,
            **{name: e.service.state for name, e in emulators.items() if e is not None},
        }

    def _record_iam_decision(self, principal: str, decision: Authorization) -> None:
        set_current_principal(principal)  # the usage this request causes is the principal's
        if self._call_log is not None:
            self._call_log.record(principal, decision)
        # Receives are logged by the pollers, only when they returned messages (_record_receive): the
        # long polls of idle queues would be most of the log, and no request's cost.
        if self.usage is not None and decision.allowed and decision.action != "sqs:ReceiveMessage":
            self.usage.call(principal, decision.action, decision.resource)
            if decision.action == "secretsmanager:GetSecretValue":  # decrypted with the stack key
                self.usage.write("kms", service="secretsmanager", operation="Decrypt")

    def _record_receive(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        """A poller's receive that returned messages (the IAM layer's call log counts every receive)."""
        if self.usage is not None and parsed.get("Messages"):
            self.usage.write("sqs", operation="ReceiveMessage", messages=len(parsed["Messages"]))

    def _function_roles(self, session: boto3.Session, aws_url: str) -> dict[str, tuple[str, str]]:
        """Each function's logical id -> (function name, execution role ARN), as deployed."""
        assert self.deployment is not None
        lambda_api = session.client("lambda", endpoint_url=aws_url)
        roles = {}
        for logical_id, physical_id in self.deployment.resources.items():
            if logical_id.endswith("Function"):
                configuration = lambda_api.get_function_configuration(FunctionName=physical_id)
                roles[logical_id] = (physical_id, configuration["Role"])
        return roles

    def _runtime_python(self) -> Path:
        python = self.root / ".xpi" / "lambda-runtime" / "bin" / "python"
        if not python.exists():
            raise RuntimeError(f"no Lambda runtime Python at {python}: run `make runtime` first")
        return python

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; safe to call twice or after a failed start."""
        stoppers = [
            self.monitoring.stop if self.monitoring else None,
            self._control.stop if self._control else None,
            self._dashboard.stop if self._dashboard else None,
            self._cognito.stop if self._cognito else None,
            self._idp.stop if self._idp else None,
            self._api.stop if self._api else None,
            self._poller.stop if self._poller else None,
            self._pool.close if self._pool else None,
            self._emulator.stop if self._emulator else None,
            self._govcloud.stop if self._govcloud else None,
            self._commercial_aws.stop if self._commercial_aws else None,
        ]
        for stop_component in filter(None, stoppers):
            started = time.monotonic()
            with contextlib.suppress(Exception):  # one failing stop must not leave the others running
                stop_component()
            if (took := time.monotonic() - started) > SLOW_STOP_S:
                _LOG.warning("stopping %s took %.1f s", getattr(stop_component, "__qualname__", "?"), took)
        self._poller, self._pool, self._emulator, self._govcloud = None, None, None, None
        self._commercial_aws = None
        self._api, self._dashboard, self._control = None, None, None
        self._cognito, self._idp = None, None
        self.monitoring = None
        for restore in reversed(self._restores):
            restore()
        self._restores = []
        if self._server is not None:
            # moto keeps its state in this process: forget it, so the next stack starts empty.
            with contextlib.suppress(Exception):
                _post_json(f"{self._aws_url}/moto-api/reset", {})
            self._server.stop()
            self._server = None

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _start_emulator(self) -> "CommercialSide":
        """The commercial side: an access key of its user, a long-term Bedrock API key of its user (and
        the access key of the key manager that rotates it), or (Roles Anywhere) only a trust anchor."""
        if self.commercial_credentials == "api-key":
            return self._start_api_key_emulator()
        if self.commercial_credentials != "roles-anywhere":
            access_key = "AKIA" + secrets.token_hex(8).upper()
            secret_key = secrets.token_urlsafe(30)
            self._emulator = BedrockEmulator(
                EmulatorConfig(
                    host="127.0.0.1",
                    port=0,
                    region=self.commercial_region,
                    access_keys=[AccessKey(access_key_id=access_key, secret_access_key=secret_key)],
                    batch=self._batch_settings(),
                )
            ).start()
            value = {"type": "iam", "aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
            return CommercialSide({}, "CommercialCredentialsSecretArn", json.dumps(value))
        anchor = make_ca()
        region = self.commercial_region
        trust_anchor = f"arn:aws:rolesanywhere:{region}:{COMMERCIAL_ACCOUNT}:trust-anchor/local"
        profile = f"arn:aws:rolesanywhere:{region}:{COMMERCIAL_ACCOUNT}:profile/local"
        role = f"arn:aws:iam::{COMMERCIAL_ACCOUNT}:role/xpi-bedrock-invoke"
        self._emulator = BedrockEmulator(
            EmulatorConfig(
                host="127.0.0.1",
                port=0,
                region=region,
                access_keys=[],  # the commercial side holds no access key at all
                roles_anywhere=RolesAnywhere(trust_anchor, anchor.certificate_pem, profile, role),
                batch=self._batch_settings(),
            )
        ).start()
        certificate = issue(anchor)
        return CommercialSide(
            {
                "CommercialCredentialSource": "roles-anywhere",
                "RolesAnywhereTrustAnchorArn": trust_anchor,
                "RolesAnywhereProfileArn": profile,
                "RolesAnywhereRoleArn": role,
                "RolesAnywhereEndpoint": self._emulator.url,
            },
            "RolesAnywhereCertificateSecretArn",
            json.dumps(
                {
                    "certificate": certificate.certificate_pem.decode(),
                    "private_key": certificate.private_key_pem.decode(),
                }
            ),
        )

    def _launch_commercial_aws(self) -> "Future[CommercialBatch]":
        """Start the commercial moto server; provision it (once it answers) on a thread of its own."""
        log_path = self.work_dir / "logs" / "commercial-aws.log"
        commercial_aws = CommercialAws(
            COMMERCIAL_ACCOUNT, free_port(), log_path, region=self.commercial_region
        )
        self._commercial_aws = commercial_aws
        commercial_aws.launch()
        provisioning = ThreadPoolExecutor(1, thread_name_prefix="commercial-aws")
        try:
            return provisioning.submit(commercial_aws.provision, self._commercial_bucket(), BATCH_ROLE)
        finally:
            provisioning.shutdown(wait=False)

    def _commercial_bucket(self) -> str:
        return f"xpi-batch-{COMMERCIAL_ACCOUNT}-{self.commercial_region}"

    def _batch_settings(self) -> BatchSettings:
        """The emulator's batch jobs read and write the commercial moto server's S3, signing as the
        batch service role."""
        commercial = self._commercial_aws
        if commercial is None:
            return BatchSettings()
        credentials = {commercial.role_arn(BATCH_ROLE): commercial.role_key}
        return BatchSettings(
            s3_endpoint_url=commercial.url, s3_region=commercial.region, role_credentials=credentials
        )

    def _start_api_key_emulator(self) -> "CommercialSide":
        manager_key, manager_secret = "AKIA" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)
        credential_id, api_key = "ACCA" + secrets.token_hex(8).upper(), "ABSK" + secrets.token_urlsafe(40)
        self._emulator = BedrockEmulator(
            EmulatorConfig(
                host="127.0.0.1",
                port=0,
                region=self.commercial_region,
                access_keys=[AccessKey(manager_key, manager_secret, user=KEY_MANAGER_USER)],
                api_keys=[EmulatorApiKey(api_key, credential_id, user=BEDROCK_USER, created_at=time.time())],
                key_managers={KEY_MANAGER_USER: BEDROCK_USER},
                batch=self._batch_settings(),
            )
        ).start()
        value = {
            "type": "api_key",
            "api_key": api_key,
            "user_name": BEDROCK_USER,
            "credential_id": credential_id,
        }
        manager = {"type": "iam", "aws_access_key_id": manager_key, "aws_secret_access_key": manager_secret}
        return CommercialSide(
            {},
            "CommercialCredentialsSecretArn",
            json.dumps(value),
            {"ApiKeyManagerSecretArn": json.dumps(manager)},
        )

    def write_state(self, path: Path) -> None:
        assert self.endpoints is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self.endpoints), indent=2), encoding="utf-8")
        temporary.rename(path)  # readers never see a half-written file

    # ------------------------------------------------------------------ moto, patched (moto_patches.py)
    def _patch_moto(self, sessions: RoleSessions) -> None:
        """Every function invoke goes to a real runtime process of that function, running with its own
        role's credentials; the interpreter calls AWS as the state machine's role; IAM decisions are
        made by iam_authorization.py and logged (enforcement itself is switched on after the deploy)."""
        check_moto_version()
        usage_name = f"{self.stack_name}-{os.getpid()}-{time.time_ns()}.jsonl"
        self.usage = UsageLog(self.work_dir / "usage" / usage_name)
        pool = self._pool
        code_cache = self.work_dir / "code"
        registered: dict[str, FunctionSpec] = {}
        in_flight: dict[str, int] = {}  # invokes running per function, against its reserved concurrency
        lock = threading.Lock()
        assert pool is not None

        def invoke(function: Any, body: str) -> tuple[bytes, str | None]:
            role = sessions.credentials(function.role, LAMBDA_SERVICE, function.function_name)
            spec = FunctionSpec(
                name=function.function_name,
                handler=function.handler,
                code_dir=code_dir_for(function.code_bytes, function.code_sha_256, code_cache),
                environment={
                    **{str(k): str(v) for k, v in (function.environment_vars or {}).items()},
                    **role.environment(),  # the execution role's credentials, as Lambda sets them
                },
                memory_mb=int(function.memory_size),
                timeout_s=int(function.timeout),
                architecture=function.architectures[0] if function.architectures else "x86_64",
            )
            with lock:
                if registered.get(spec.name) != spec:
                    pool.register(spec)
                    registered[spec.name] = spec
            reserved = function.reserved_concurrency
            with lock:  # Lambda refuses an invoke over the function's reserved concurrency
                running = in_flight.get(spec.name, 0)
                throttled = reserved is not None and running >= int(reserved)
                if not throttled:
                    in_flight[spec.name] = running + 1
            if throttled:
                if self.monitoring is not None:
                    self.monitoring.lambda_throttle(spec.name)
                raise TooManyRequests(spec.name)
            try:
                result = pool.invoke(spec.name, body.encode("utf-8"))
            finally:
                with lock:
                    in_flight[spec.name] -= 1
            if self.usage is not None:
                self.usage.invocation(spec.name, result.duration_ms, spec.memory_mb)
            if self.monitoring is not None:
                self.monitoring.lambda_invocation(spec.name, result.duration_ms, bool(result.function_error))
            return result.payload, result.function_error

        def state_machine_role(role_arn: str) -> RoleCredentials:
            return sessions.credentials(role_arn, STATES_SERVICE, "xpi-local-execution")

        self._restores += [
            patch_lambda_invoke(invoke),
            patch_interpreter_clients(state_machine_role),
            patch_transactions(),
            patch_thread_list(),
            patch_event_paths(),
            patch_instance_tracking(),
            patch_finished_environments(),
            patch_lambda_service_errors(),
            patch_deleted_receipts(),
            patch_iam_evaluation(self._record_iam_decision),
            patch_message_move_task(),
            patch_sender_id(),
            patch_rotate_secret(),
            patch_signing_keys_and_locks(),
            patch_compressed_signatures(),
            *([patch_usage_metering(self.usage)] if self.usage is not None else []),
            patch_request_dispatch(),  # last: it keeps each response class's methods as then patched
        ]


def _post_json(url: str, payload: dict[str, Any]) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing a non-loopback URL: {url}")
    request = urllib.request.Request(  # noqa: S310 - checked above: loopback http only
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()


def _check_mapping(mapping: MappingSpec, role_arn: str, region: str) -> None:
    """Lambda refuses an event source mapping whose function's role may not poll the queue."""
    missing = missing_poller_permissions(role_documents(ACCOUNT_ID, region, role_arn), mapping.queue_arn)
    if missing:
        raise RuntimeError(
            f"the event source mapping of {mapping.function_name} cannot be created: its role may not call "
            f"{', '.join(missing)} on {mapping.queue_arn} (CloudFormation fails the same mapping on AWS)"
        )
