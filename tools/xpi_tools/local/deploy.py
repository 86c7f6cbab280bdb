"""Deploy the SAM-built template into moto: translate with samtranslator, create with CloudFormation.

The template stays the single source of resources. moto's gaps are filled here, each one named
(see docs/local-stack.md); before the stack is created (`prepare_for_moto`):
  1. code folders are zipped into moto's S3 before translation (CloudFormation reads code from S3);
  2. moto resolves AWS::Partition to "aws" in every region: the region's partition is written in;
  3. moto's CloudFormation has no AWS::SecretsManager::Secret: secrets are created through the
     Secrets Manager API and their Refs replaced by the new ARNs;
and after it (`fill_moto_gaps`):
  4. state machines created by CloudFormation land in a backend that cannot execute them, and
     DefinitionSubstitutions are ignored: they are re-created through the Step Functions API (which
     moto serves from its executing interpreter) with the substitutions resolved;
  5. moto's own SQS event source mapping invokes inline in SendMessage and ignores partial batch
     failures: the mappings are switched off in moto and served by `SqsPoller` instead;
  9. moto's CloudFormation ignores an S3 bucket's NotificationConfiguration (queue configurations):
     it is set through the S3 API after the stack is created (batch uploads).
 16. moto's CloudFormation has no AWS::SecretsManager::ResourcePolicy: the secret's policy is put
     through the Secrets Manager API after the stack is created (iam_authorization.py applies its Deny).
 22. moto's CloudFormation has no AWS::SecretsManager::RotationSchedule: its function and interval are
     set on the secret after CreateStack.
 17. moto's CloudFormation has no AWS::Events::EventBusPolicy: the statement is put on the bus with
     PutPermission after the stack is created.
 10. moto's CloudFormation does not run the AWS::Include transform: an included local
     document (the API's api/openapi.yaml) is inlined before translation, as CloudFormation would;
     moto's API Gateway neither imports a RestApi's Body nor invokes Lambda integrations, so the
     RestApi is created without its Body (for its id) and without Deployment/Stage; the local API
     Gateway (local/apigateway.py) serves the document instead.
 31. moto's CloudFormation has no AWS::CloudWatch::Alarm: each alarm is put with PutMetricAlarm after
     the stack is created (xpi_tools.local.monitoring evaluates them).
"""

import copy
import hashlib
import io
import json
import logging
import os
import secrets
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from samcli.yamlhelper import yaml_parse  # type: ignore[import-untyped]
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from xpi_tools.local.sqs_poller import MappingSpec

CODE_BUCKET = "xpi-local-deployment"


def load_template(path: Path) -> dict[str, Any]:
    """The template as SAM CLI reads it (short-form intrinsics such as !GetAtt become long form)."""
    template: dict[str, Any] = yaml_parse(path.read_text(encoding="utf-8"))
    return template


@dataclass(frozen=True)
class Deployment:
    stack_name: str
    outputs: dict[str, str]
    resources: dict[str, str]  # logical id -> physical id
    mappings: list[MappingSpec]


def _zip_dir(folder: Path) -> bytes:
    """Every file of the built folder, its bytecode (`make bytecode`) included, as `sam deploy` zips it:
    Lambda's /var/task is read-only, so what is not shipped precompiled is compiled at every cold start."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _zipped(folder: Path, cache_dir: Path) -> tuple[str, bytes]:
    """The folder as a zip, made once per content (sam build copies one CodeUri into every function)."""
    digest = _folder_digest(folder)
    cached = cache_dir / f"{digest}.zip"
    if not cached.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(_zip_dir(folder))
        partial.replace(cached)
    return digest, cached.read_bytes()


def _upload_code(template: dict[str, Any], build_dir: Path, s3: Any, cache_dir: Path) -> None:
    """Replace every function's local CodeUri with an S3 location in moto (identical code once)."""
    s3.create_bucket(
        Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name}
    )
    uploaded: dict[str, str] = {}
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        code_uri = resource["Properties"].get("CodeUri") or template.get("Globals", {}).get(
            "Function", {}
        ).get("CodeUri")
        digest, body = _zipped((build_dir / str(code_uri)).resolve(), cache_dir)
        if digest not in uploaded:
            uploaded[digest] = f"code/{digest}.zip"
            s3.put_object(Bucket=CODE_BUCKET, Key=uploaded[digest], Body=body)
        resource["Properties"]["CodeUri"] = {"Bucket": CODE_BUCKET, "Key": uploaded[digest]}


def _inline_state_machines(template: dict[str, Any], build_dir: Path) -> None:
    # A definition file (DefinitionUri of SAM's type; DefinitionS3Location of CloudFormation's, which the
    # stack uses for EncryptionConfiguration) becomes the Definition itself, as `sam deploy` uploads it.
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            definition_path = (build_dir / properties.pop("DefinitionUri")).resolve()
            properties["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))
        elif kind == "AWS::StepFunctions::StateMachine" and isinstance(
            properties.get("DefinitionS3Location"), str
        ):
            definition_path = (build_dir / properties.pop("DefinitionS3Location")).resolve()
            properties["Definition"] = json.loads(definition_path.read_text(encoding="utf-8"))


def inline_includes(value: Any, build_dir: Path) -> Any:
    """Gap 10: each AWS::Include of a local file becomes the file's content, as CloudFormation includes it."""
    if isinstance(value, dict):
        transform = value.get("Fn::Transform")
        if len(value) == 1 and isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
            location = str(transform["Parameters"]["Location"])
            return inline_includes(load_template(build_dir / location), build_dir)
        return {k: inline_includes(v, build_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [inline_includes(v, build_dir) for v in value]
    return value


API_DOCUMENT_METADATA = "XpiLocalApiDocument"
SECRET_KEYS_METADATA = "XpiLocalSecretKeys"  # noqa: S105 (a metadata key, not a secret)


def _without_api_deployments(cfn: dict[str, Any]) -> dict[str, Any]:
    """Gap 10: moto cannot deploy a RestApi defined by its Body; keep the RestApi only."""
    dropped = {
        logical_id
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] in ("AWS::ApiGateway::Deployment", "AWS::ApiGateway::Stage")
    }
    for logical_id in dropped:
        del cfn["Resources"][logical_id]
    for resource in cfn["Resources"].values():
        if resource["Type"] == "AWS::ApiGateway::RestApi":
            body = resource.get("Properties", {}).pop("Body", None)
            if body is not None:  # its methods are recorded in moto after the deploy (gap 29)
                resource.setdefault("Metadata", {})[API_DOCUMENT_METADATA] = body
        depends = resource.get("DependsOn")
        if isinstance(depends, list):
            resource["DependsOn"] = [d for d in depends if d not in dropped]
        elif depends in dropped:
            del resource["DependsOn"]
    return cfn


COGNITO_TYPES = ("AWS::Cognito::",)
COGNITO_METADATA = "xpi:cognito"  # the Cognito resources set aside, for xpi_tools.local.sign_in


def without_cognito(cfn: dict[str, Any], local_ids: Mapping[str, str]) -> dict[str, Any]:
    """Gap 35: moto's CloudFormation has no Cognito user pool, identity provider, domain, client, identity
    pool nor role attachment. They are set aside (under the template's metadata, where the local sign-in
    reads them), each Ref to one is replaced by the id the local sign-in plays it with (`local_ids`; in a
    resource, "" without one), and what still names one (Cognito's invoke permission on the trigger,
    outputs) is dropped."""
    removed = {
        logical_id: resource
        for logical_id, resource in cfn["Resources"].items()
        if str(resource["Type"]).startswith(COGNITO_TYPES)
    }
    if not removed:
        return cfn
    cfn.setdefault("Metadata", {})[COGNITO_METADATA] = removed
    for logical_id in removed:
        del cfn["Resources"][logical_id]
        if logical_id in local_ids:
            cfn["Resources"] = _replace(cfn["Resources"], {"Ref": logical_id}, local_ids[logical_id])
            cfn["Outputs"] = _replace(cfn.get("Outputs", {}), {"Ref": logical_id}, local_ids[logical_id])
        else:  # the sign-in off: a resource deployed either way names it only in an `!If` branch not taken
            cfn["Resources"] = _replace(cfn["Resources"], {"Ref": logical_id}, "")

    def names_removed(value: Any) -> bool:
        text = json.dumps(value)
        return any(f'"{i}"' in text or f"${{{i}" in text for i in removed)

    for section in ("Resources", "Outputs"):
        for logical_id in [k for k, v in cfn.get(section, {}).items() if names_removed(v)]:
            del cfn[section][logical_id]
    return cfn


# Resource policies moto's CloudFormation does not create (gap 8): cfn-lint, checkov and the IAM policy
# linter check them instead, so moto's warning for each one is noise to a new user.
POLICIES_MOTO_SKIPS = (
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
    "AWS::SecretsManager::ResourcePolicy",  # put through the API instead (gap 16)
    "AWS::Events::EventBusPolicy",  # put with PutPermission instead (gap 17)
    "AWS::SecretsManager::RotationSchedule",  # set on the secret instead (gap 22)
    "AWS::CloudWatch::Alarm",  # put with PutMetricAlarm instead (gap 31)
)


class _KnownGaps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(kind in record.getMessage() for kind in POLICIES_MOTO_SKIPS)


def quiet_known_gaps() -> None:
    """Silence moto's warnings for the policies it skips, wherever it parses the stack (create, list
    resources, read the template); idempotent."""
    moto_logger = logging.getLogger("moto")
    if not any(isinstance(f, _KnownGaps) for f in moto_logger.filters):
        moto_logger.addFilter(_KnownGaps())
    for kind in POLICIES_MOTO_SKIPS:
        warnings.filterwarnings("ignore", message=f"Tried to parse {kind}", category=UserWarning)


def translate(template: dict[str, Any], parameters: Mapping[str, str], region: str) -> dict[str, Any]:
    # samtranslator asks its feature toggles about features this template does not use: not a warning.
    logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=region))
    cfn: dict[str, Any] = translator.translate(copy.deepcopy(template), parameter_values=dict(parameters))
    return cfn


def _replace(value: Any, old: Any, new: Any) -> Any:
    if value == old:
        return new
    if isinstance(value, dict):
        return {k: _replace(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, old, new) for v in value]
    return value


def _write_partition(value: Any, partition: str) -> Any:
    value = _replace(value, {"Ref": "AWS::Partition"}, partition)
    text = json.dumps(value).replace("${AWS::Partition}", partition)
    return json.loads(text)


def prepare_for_moto(
    cfn: dict[str, Any], stack_name: str, session: boto3.Session, endpoint_url: str
) -> dict[str, Any]:
    from moto.utilities.utils import get_partition

    cfn = _write_partition(cfn, get_partition(session.region_name))  # gap 2
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    for logical_id, resource in list(cfn["Resources"].items()):  # gap 3
        if resource["Type"] != "AWS::SecretsManager::Secret":
            continue
        properties = resource.get("Properties", {})
        generate = properties.get("GenerateSecretString", {})
        if "SecretStringTemplate" in generate or "GenerateStringKey" in generate:
            value = json.loads(generate.get("SecretStringTemplate", "{}"))
            if "GenerateStringKey" in generate:
                value[generate["GenerateStringKey"]] = secrets.token_urlsafe(30)
            secret_string = json.dumps(value)
        else:  # a generated plain string (the hash key): random, at least PasswordLength characters
            length = int(generate.get("PasswordLength", 32))
            secret_string = secrets.token_urlsafe(length)[:length]
        arn = secretsmanager.create_secret(
            Name=f"{stack_name}-{logical_id}",
            Description=str(properties.get("Description", "")),
            SecretString=secret_string,
        )["ARN"]
        del cfn["Resources"][logical_id]
        if "KmsKeyId" in properties:  # set once the key exists (gap 29)
            cfn.setdefault("Metadata", {}).setdefault(SECRET_KEYS_METADATA, {})[arn] = properties["KmsKeyId"]
        cfn = _replace(cfn, {"Ref": logical_id}, arn)
    return cfn


def deploy(
    build_dir: Path,
    *,
    stack_name: str,
    parameters: Mapping[str, str],
    region: str,
    endpoint_url: str,
    cache_dir: Path,
    cognito_ids: Mapping[str, str] | None = None,
) -> tuple[Deployment, dict[str, Any]]:
    """Create the stack in moto and return what was created plus the translated template."""
    session = boto3.Session(region_name=region)
    s3 = session.client("s3", endpoint_url=endpoint_url)
    cloudformation = session.client("cloudformation", endpoint_url=endpoint_url)

    template = load_template(build_dir / "template.yaml")
    _upload_code(template, build_dir, s3, cache_dir)
    _inline_state_machines(template, build_dir)
    template = inline_includes(template, build_dir)  # gap 10
    cfn = prepare_for_moto(translate(template, parameters, region), stack_name, session, endpoint_url)
    cfn = _without_api_deployments(cfn)  # gap 10
    cfn = without_cognito(cfn, cognito_ids or {})  # gap 35

    quiet_known_gaps()
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(cfn),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(
            f"stack {stack_name} ended as {stack['StackStatus']}: {stack.get('StackStatusReason')}"
        )
    resources = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    mappings = fill_moto_gaps(cfn, stack_name, resources, session, endpoint_url)
    return Deployment(stack_name, outputs, resources, mappings), cfn


def _put_resource_policies(
    cfn: dict[str, Any], stack: Any, session: boto3.Session, endpoint_url: str
) -> None:
    """The resource policies moto's CloudFormation does not create but the local IAM evaluation applies."""
    from moto.cloudformation.parsing import clean_json

    # Gap 16: a secret's resource policy, through the Secrets Manager API (refs resolved by moto's resolver).
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::SecretsManager::ResourcePolicy":
            continue
        properties = clean_json(resource["Properties"], stack.resource_map)
        secretsmanager.put_resource_policy(
            SecretId=str(properties["SecretId"]),
            ResourcePolicy=json.dumps(properties["ResourcePolicy"]),
            BlockPublicPolicy=str(properties.get("BlockPublicPolicy", "false")).lower() == "true",
        )

    # Gap 22: moto's CloudFormation has no AWS::SecretsManager::RotationSchedule: its function and
    # interval are set on moto's secret, as the resource sets them on AWS (RotateImmediatelyOnUpdate
    # false: no rotation now). RotateSecret then runs that function (moto_patches.patch_rotate_secret).
    from moto.secretsmanager.models import secretsmanager_backends

    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::SecretsManager::RotationSchedule":
            continue
        condition = resource.get("Condition")
        if condition and not stack.resource_map.lazy_condition_map[condition]:
            continue  # e.g. no rotation with Roles Anywhere: no stored key
        properties = clean_json(resource["Properties"], stack.resource_map)
        secret_backend = secretsmanager_backends[stack.account_id][session.region_name]
        secret: Any = secret_backend.secrets[str(properties["SecretId"])]
        secret.rotation_lambda_arn = str(properties["RotationLambdaARN"])
        secret.auto_rotate_after_days = int(properties["RotationRules"]["AutomaticallyAfterDays"])
        secret.rotation_enabled = True
        secret.rotation_requested = True  # without it moto's DescribeSecret leaves out RotationEnabled

    # Gap 17: moto's CloudFormation has no AWS::Events::EventBusPolicy: each statement is put on its bus
    # through PutPermission (refs resolved by moto's resolver); the local IAM evaluation applies its
    # Deny statements for events:PutEvents (iam_authorization.put_events_denied_by_bus_policy).
    events = session.client("events", endpoint_url=endpoint_url)
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::Events::EventBusPolicy":
            continue
        properties = clean_json(resource["Properties"], stack.resource_map)
        statement = {"Sid": properties["StatementId"], **properties["Statement"]}
        bus = properties["EventBusName"]  # moto's resolver answers a Ref of the bus with the bus itself
        events.put_permission(
            EventBusName=str(getattr(bus, "name", bus)),
            Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )


# The AWS::CloudWatch::Alarm properties PutMetricAlarm takes under the same name.
ALARM_PROPERTIES = (
    "AlarmName", "AlarmDescription", "ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions",
    "MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Dimensions", "Period", "Unit",
    "EvaluationPeriods", "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
    "EvaluateLowSampleCountPercentile", "Metrics",
)  # fmt: skip


def _put_alarms(cfn: dict[str, Any], stack: Any, session: boto3.Session, endpoint_url: str) -> None:
    """Gap 31: moto's CloudFormation has no AWS::CloudWatch::Alarm: each alarm whose condition holds is
    put with PutMetricAlarm (refs resolved by moto's resolver). xpi_tools.local.monitoring evaluates them."""
    from moto.cloudformation.parsing import clean_json

    cloudwatch = session.client("cloudwatch", endpoint_url=endpoint_url)
    for resource in cfn["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        condition = resource.get("Condition")
        if condition and not stack.resource_map.lazy_condition_map[condition]:
            continue
        properties = clean_json(resource["Properties"], stack.resource_map)
        alarm = {k: properties[k] for k in ALARM_PROPERTIES if k in properties}
        for number in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if number in alarm:
                alarm[number] = int(alarm[number])
        alarm["Threshold"] = float(alarm["Threshold"])
        for query in alarm.get("Metrics", []):
            if "MetricStat" in query:
                query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            if key in alarm:
                alarm[key] = [str(getattr(a, "arn", a)) for a in alarm[key]]
        cloudwatch.put_metric_alarm(**alarm)


def fill_moto_gaps(
    cfn: dict[str, Any],
    stack_name: str,
    resources: Mapping[str, str],
    session: boto3.Session,
    endpoint_url: str,
) -> list[MappingSpec]:
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json
    from moto.core import DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]

    region = session.region_name
    backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][region]
    stack = next(s for s in backend.stacks.values() if s.name == stack_name)
    stepfunctions = session.client("stepfunctions", endpoint_url=endpoint_url)
    lambda_ = session.client("lambda", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)

    # Gap 4: executable state machines, same name and ARN, substitutions resolved by moto's resolver.
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource["Properties"]
        if "Definition" in properties:
            definition = json.dumps(properties["Definition"])
        else:  # samtranslator emits the definition as a Fn::Join of its lines
            definition = str(clean_json(properties["DefinitionString"], stack.resource_map))
        substitutions = clean_json(properties.get("DefinitionSubstitutions", {}), stack.resource_map)
        for name, value in substitutions.items():
            definition = definition.replace("${" + name + "}", str(value))
        arn = resources[logical_id]
        role_arn = clean_json(properties["RoleArn"], stack.resource_map)
        encryption = clean_json(properties.get("EncryptionConfiguration", {}), stack.resource_map)
        create: Any = stepfunctions.create_state_machine
        create(
            name=arn.rsplit(":", 1)[1],
            definition=definition,
            roleArn=role_arn,
            type=properties.get("StateMachineType", "STANDARD"),
            # Recorded by moto (DescribeStateMachine shows it); it does not encrypt with it.
            **({"encryptionConfiguration": _api_encryption(encryption)} if encryption else {}),
        )

    _put_resource_policies(cfn, stack, session, endpoint_url)
    _apply_ignored_configuration(cfn, stack, resources, session, endpoint_url)
    _put_alarms(cfn, stack, session, endpoint_url)

    # Gap 9: moto's CloudFormation ignores an S3 bucket's NotificationConfiguration: set it through
    # the S3 API (refs resolved by moto's resolver), so uploads notify their queues as on AWS.
    s3 = session.client("s3", endpoint_url=endpoint_url)
    for logical_id, resource in cfn["Resources"].items():
        notification = resource.get("Properties", {}).get("NotificationConfiguration")
        if resource["Type"] != "AWS::S3::Bucket" or not notification:
            continue
        resolved = clean_json(notification, stack.resource_map)
        configure: Any = s3.put_bucket_notification_configuration
        configure(
            Bucket=resources[logical_id],
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": queue["Queue"],
                        "Events": [queue["Event"]],
                        **(
                            {"Filter": {"Key": {"FilterRules": queue["Filter"]["S3Key"]["Rules"]}}}
                            if "Filter" in queue
                            else {}
                        ),
                    }
                    for queue in resolved.get("QueueConfigurations", [])
                ]
            },
        )

    # Gap 5: take SQS mappings over from moto's inline delivery.
    mappings = []
    for mapping in lambda_.list_event_source_mappings()["EventSourceMappings"]:
        queue_arn = mapping["EventSourceArn"]
        if ":sqs:" not in queue_arn:
            continue
        lambda_.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        mappings.append(
            MappingSpec(
                queue_url=queue_url,
                queue_arn=queue_arn,
                function_name=mapping["FunctionArn"].rsplit(":", 1)[1],
                batch_size=mapping.get("BatchSize", 10),
                max_batching_window_s=float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
                report_batch_item_failures="ReportBatchItemFailures"
                in mapping.get("FunctionResponseTypes", []),
                region=region,
            )
        )
    return mappings


def _apply_ignored_configuration(
    cfn: dict[str, Any], stack: Any, resources: Mapping[str, str], session: boto3.Session, endpoint_url: str
) -> None:
    """Gap 25: configuration moto's CloudFormation ignores, set through the service APIs (or moto's
    models where it has no API), so that what reads the live configuration (the configuration checks)
    finds what AWS would: buckets' encryption with a Bucket Key, public access blocks and versioning;
    log groups' KMS keys; tables' SSE (moto reads the CloudFormation SSEEnabled as the API's Enabled)
    and point-in-time recovery; secrets' KMS keys; the API's resource policy and methods.

    Not the bucket policies: moto applies a bucket policy's Deny to object requests whatever its
    condition, so the TLS-only Deny (aws:SecureTransport false) would refuse every request to the local
    stack's plain-HTTP endpoint. They stay checked statically (cfn-lint, checkov)."""
    from moto.apigateway.models import apigateway_backends
    from moto.cloudformation.parsing import clean_json
    from moto.dynamodb.models import dynamodb_backends
    from moto.kms.models import kms_backends
    from moto.logs.models import logs_backends

    region, account = session.region_name, stack.account_id
    s3 = session.client("s3", endpoint_url=endpoint_url)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    for logical_id, resource in cfn["Resources"].items():
        kind, physical = resource["Type"], resources.get(logical_id, "")
        condition = resource.get("Condition")
        if condition and not stack.resource_map.lazy_condition_map[condition]:
            continue
        if not physical:
            continue
        properties = clean_json(resource.get("Properties", {}), stack.resource_map)
        if kind == "AWS::S3::Bucket":
            _configure_bucket(s3, physical, properties)
        elif kind == "AWS::Logs::LogGroup" and "KmsKeyId" in properties:
            logs_backends[account][region].groups[physical].kms_key_id = _key_ref(properties["KmsKeyId"])
        elif kind == "AWS::DynamoDB::Table":
            sse = properties.get("SSESpecification", {})
            if str(sse.get("SSEEnabled", "false")).lower() == "true" and "KMSMasterKeyId" in sse:
                key = _key_ref(sse["KMSMasterKeyId"])
                if not key.startswith("arn:"):  # a key id: moto's DescribeKey fails on a stack's key
                    key = kms_backends[account][region].keys[key].arn
                table = dynamodb_backends[account][region].get_table(physical)
                table.sse_specification = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": key}
            recovery = properties.get("PointInTimeRecoverySpecification", {})
            if str(recovery.get("PointInTimeRecoveryEnabled", "false")).lower() == "true":
                dynamodb.update_continuous_backups(
                    TableName=physical, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                )
        elif kind == "AWS::ApiGateway::RestApi":
            api = apigateway_backends[account][region].get_rest_api(physical)
            if "Policy" in properties:
                api.policy = json.dumps(properties["Policy"])
            _record_api_methods(api, resource.get("Metadata", {}).get(API_DOCUMENT_METADATA, {}))
    keys = clean_json(cfn.get("Metadata", {}).get(SECRET_KEYS_METADATA, {}), stack.resource_map)
    for secret_arn, key in keys.items():
        secretsmanager.update_secret(SecretId=secret_arn, KmsKeyId=_key_ref(key))


def _key_ref(value: Any) -> str:
    """A KMS key as moto's resolver answers a Ref of it (the key object itself) or a GetAtt (its ARN)."""
    return str(getattr(value, "arn", value))


def _configure_bucket(s3: Any, bucket: str, properties: Mapping[str, Any]) -> None:
    encryption = properties.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration")
    if encryption:
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": {
                    k: str(v) for k, v in rule.get("ServerSideEncryptionByDefault", {}).items()
                },
                "BucketKeyEnabled": str(rule.get("BucketKeyEnabled", "false")).lower() == "true",
            }
            for rule in encryption
        ]
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})
    block = properties.get("PublicAccessBlockConfiguration")
    if block:
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={k: str(v).lower() == "true" for k, v in block.items()},
        )
    versioning = properties.get("VersioningConfiguration", {}).get("Status")
    if versioning:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": str(versioning)})


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def _record_api_methods(api: Any, document: Mapping[str, Any]) -> None:
    """Each operation of the API's document as a method of moto's RestApi, with the authorization API
    Gateway gives it on import: AWS_IAM for an operation whose security is the sigv4 scheme, else NONE."""
    schemes = document.get("components", {}).get("securitySchemes", {})
    by_path = {"/": api.default}
    for path in sorted(document.get("paths", {})):
        parent = api.default
        for depth, part in enumerate(path.strip("/").split("/"), start=1):
            prefix = "/" + "/".join(path.strip("/").split("/")[:depth])
            if prefix not in by_path:
                by_path[prefix] = api.add_child(path=part, parent_id=parent.id)
            parent = by_path[prefix]
        for method, operation in document["paths"][path].items():
            if method not in HTTP_METHODS:
                continue
            names = {name for requirement in operation.get("security", []) for name in requirement}
            iam = any(
                schemes.get(name, {}).get("x-amazon-apigateway-authtype") == "awsSigv4" for name in names
            )
            parent.add_method(method.upper(), "AWS_IAM" if iam else "NONE", api_key_required=False)


def _api_encryption(encryption: Mapping[str, Any]) -> dict[str, Any]:
    """A state machine's EncryptionConfiguration as the Step Functions API spells it (camelCase)."""
    names = {
        "Type": "type",
        "KmsKeyId": "kmsKeyId",
        "KmsDataKeyReusePeriodSeconds": "kmsDataKeyReusePeriodSeconds",
    }
    return {names[key]: value for key, value in encryption.items() if key in names}


def code_dir_for(code_bytes: bytes, code_sha: str, cache_root: Path) -> Path:
    """The deployed zip, unpacked once per content hash: what runs is exactly what was deployed."""
    target = cache_root / code_sha.replace("/", "_").replace("+", "-")
    if not (target / ".complete").exists():
        partial = target.with_name(target.name + f".{os.getpid()}.partial")
        with zipfile.ZipFile(io.BytesIO(code_bytes)) as archive:
            archive.extractall(partial)
        partial.rename(target) if not target.exists() else None
        (target / ".complete").touch()
    return target
