"""Every patch the local stack makes inside moto, in one place (docs/local-stack.md names each gap).

They were written for, and tested against, one moto version (`MOTO_VERSION`, the pin in
requirements/dev.in): `check_moto_version` refuses another, so a moto upgrade re-reads each patch first.
Each `patch_*` function applies one patch and returns the function that undoes it; `tests/unit/local/
test_moto_patches.py` has one test per patch, on moto's own objects.

  gap 6   patch_lambda_invoke         every function invoke -> a real Lambda runtime process
  gap 7   patch_interpreter_clients   the Step Functions interpreter calls AWS as the state machine's
                                      role, with one cached client per service and role
  gap 12  patch_transactions          TransactWriteItems checked before it writes, rolled back item by
                                      item, not by table copies, and every DynamoDB item request one
                                      at a time (gap 37)
  gap 13  patch_thread_list           the interpreter's thread list keeps only live threads
  gap 14  patch_iam_evaluation        IAM decisions by iam_authorization.py, written to the call log
          enable_iam_enforcement      moto checks every request's signature and IAM permission
  gap 15  patch_message_move_task     SQS StartMessageMoveTask (the admin DLQ redrive), which moto lacks
  gap 21  patch_rotate_secret         RotateSecret runs the configured rotation function's four steps and
                                      stops, AWSCURRENT unchanged, at the first that fails
  gap 23  patch_instance_tracking     model objects are no longer kept forever in their class's list
                                      (S3's excepted)
  gap 24  patch_signing_keys_and_locks  CloudFormation's AWS::KMS::Key keeps its KeySpec and KeyUsage
                                      (the lineage signing key), AWS::S3::Bucket its Object Lock
  gap 25  patch_sender_id             an SQS message's SenderId is its signer's aws:userid, not one fixed id
  gap 26  patch_event_paths           EventBridge's input paths parsed once, not once per target per event
  gap 30  patch_finished_environments  a finished execution keeps its history, not the interpreter's
                                      whole environment
  gap 32  patch_request_dispatch      moto's server lists its own package folder and each response
                                      class's methods once, not on every request
  gap 33  patch_lambda_service_errors  a Lambda task whose invoke the service refused fails as
                                      `Lambda.<code>`, as Step Functions reports it
  gap 34  patch_deleted_receipts      each SQS queue remembers its recent deleted receipt handles only
  gap 38  patch_compressed_signatures  a gzipped request's signature checked on the bytes as sent
          patch_usage_metering        DynamoDB capacity, S3's KMS requests and EventBridge chunks, to the
                                      usage log the cost meter reads (bench/bench_cost.py)
"""

import copy
import functools
import importlib
import io
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config

from xpi_tools.local.iam_authorization import (
    Authorization,
    RequestContext,
    denied_by_secret_policy,
    is_allowed,
    put_events_denied_by_bus_policy,
    required_permissions,
)
from xpi_tools.local.principals import RoleCredentials
from xpi_tools.local.usage import UsageLog, event_chunks, read_units, write_units

MOTO_VERSION = "5.2.5"
Restore = Callable[[], None]


def check_moto_version() -> None:
    from importlib.metadata import version

    installed = version("moto")
    if installed != MOTO_VERSION:
        raise RuntimeError(
            f"the local stack's moto patches were written for moto {MOTO_VERSION}, not {installed}: "
            "re-check each patch in tools/xpi_tools/local/moto_patches.py, then change MOTO_VERSION"
        )


# ---------------------------------------------------------------------------------------- gap 6
def patch_lambda_invoke(invoke: Callable[[Any, str], tuple[bytes, str | None]]) -> Restore:
    """Every path by which moto runs a function (Invoke API, Step Functions tasks) ends in
    LambdaFunction.invoke: `invoke(function, payload)` runs it and returns (payload, function error)."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.invoke

    def patched(function: Any, body: str, request_headers: Any, response_headers: Any) -> bytes:
        payload, function_error = invoke(function, body or "{}")
        if function_error:
            response_headers["x-amz-function-error"] = function_error
        return payload

    LambdaFunction.invoke = patched  # type: ignore[method-assign,assignment]

    def restore() -> None:
        LambdaFunction.invoke = original  # type: ignore[method-assign]

    return restore


# ---------------------------------------------------------------------------------------- gap 7
def patch_interpreter_clients(role_credentials: Callable[[str], RoleCredentials]) -> Restore:
    """moto's interpreter signs its task calls with fixed dummy keys and builds a new client for every
    task (about 17 ms of CPU each). It now calls as the state machine's role (the execution's role ARN,
    or a task's own Credentials), with one client per service, region and role."""
    from moto.settings import moto_server_port

    boto_client: Any = importlib.import_module("moto.stepfunctions.parser.asl.utils.boto_client")
    original = boto_client.boto_client_for
    clients: dict[tuple[str, str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = str(getattr(state_credentials, "role_arn", ""))
        key = (region, service, role_arn)
        with lock:
            if key not in clients:
                credentials = role_credentials(role_arn)
                make_client: Any = boto3.client
                clients[key] = make_client(
                    service_name=service,
                    region_name=region,
                    endpoint_url=f"http://localhost:{moto_server_port()}",
                    aws_access_key_id=credentials.access_key_id,
                    aws_secret_access_key=credentials.secret_access_key,
                    aws_session_token=credentials.session_token,
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=99999,  # task timeouts are the interpreter's, as in moto
                        read_timeout=99999,
                    ),
                )
            return clients[key]

    return _replace_in_modules("moto.stepfunctions", "boto_client_for", original, boto_client_for)


# ---------------------------------------------------------------------------------------- gap 12
# One DynamoDB request at a time inside moto's backend (gap 37): DynamoDB makes each request atomic
# (a conditional write's check and write, a transaction's checks, writes and rollback); moto answers
# each request on a thread of its own and takes no lock. Reentrant: a transaction reads and writes
# through the same backend methods.
DYNAMODB_LOCK = threading.RLock()
# The backend methods that read or write items (BatchWriteItem, BatchGetItem and TransactGetItems go
# through them item by item, as DynamoDB makes those atomic per item, not per batch).
DYNAMODB_ITEM_METHODS = ("get_item", "put_item", "update_item", "delete_item", "query", "scan")


def patch_transactions() -> Restore:
    """moto's TransactWriteItems deep-copies every table it touches, for its rollback: O(table size) per
    call, so a 10,000-line batch (one transaction per line) slows to a crawl. Roll back the items the
    transaction names instead (O(items), same outcome).

    And each item request runs alone (gap 37): moto checks a condition and then writes, and a failed
    transaction puts back the items as it saved them before it ran, so without a lock another thread's
    write between the two is passed over (two conditional claims both win) or undone (a rolled-back
    duplicate transaction restores a counter without the ADD another line's transaction made)."""
    dynamodb_models: Any = importlib.import_module("moto.dynamodb.models")
    backend = dynamodb_models.DynamoDBBackend
    original_copy, original_transact = dynamodb_models.copy, backend.transact_write_items
    originals = {name: getattr(backend, name) for name in DYNAMODB_ITEM_METHODS}
    dynamodb_models.copy = NoTableCopies(original_copy)
    backend.transact_write_items = with_item_rollback(original_transact)
    for name, method in originals.items():
        setattr(backend, name, one_at_a_time(method))

    def restore() -> None:
        dynamodb_models.copy = original_copy
        backend.transact_write_items = original_transact
        for name, method in originals.items():
            setattr(backend, name, method)

    return restore


def one_at_a_time(method: Any) -> Any:
    """A DynamoDB backend method that runs holding DYNAMODB_LOCK."""

    @functools.wraps(method)
    def alone(*args: Any, **kwargs: Any) -> Any:
        with DYNAMODB_LOCK:
            return method(*args, **kwargs)

    return alone


class NoTableCopies:
    """Stands in for the `copy` module inside moto.dynamodb.models: a Table "deep copy" is the table
    itself, so moto's whole-table rollback does nothing; with_item_rollback does it instead. Everything
    else is copied as `copy` does."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return value if isinstance(value, Table) else self._real.deepcopy(value, memo)


def with_item_rollback(transact_write_items: Any) -> Any:
    """moto's TransactWriteItems, isolated and rolled back item by item. moto's server is threaded and
    its transaction neither isolated nor checked before it writes: it applies each operation in turn,
    and on a failed condition puts back what it saved at its start, so a write another request made to
    one of its items in between (another transaction's counter ADD) was lost with it. Here transactions
    run one at a time, every condition is checked before anything is written (a failed one writes and
    restores nothing), and only an error after a write restores the items it named."""

    def transact(backend: Any, transact_items: list[dict[str, Any]]) -> Any:
        with DYNAMODB_LOCK:  # checked, saved, run and put back with no other request in between
            _refuse_failed_conditions(backend, transact_items)
            saved: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
            for entry in transact_items:
                _, op = next(iter(entry.items()))
                table = backend.tables.get(op.get("TableName"))
                if table is None:
                    continue  # moto answers it
                key = _transaction_key(table, op)
                try:
                    current = backend.get_item(op["TableName"], key)
                except Exception:  # noqa: S112 - a malformed key: moto's own answer follows
                    continue
                attributes = copy.deepcopy(current.to_json()["Attributes"]) if current else None
                saved.append((op["TableName"], key, attributes))
            try:
                return transact_write_items(backend, transact_items)
            except Exception:
                for table_name, key, attributes in reversed(saved):
                    if attributes is None:
                        backend.delete_item(table_name, key)
                    else:
                        backend.put_item(table_name, attributes)
                raise

    return transact


def _transaction_key(table: Any, op: dict[str, Any]) -> dict[str, Any]:
    names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
    return op.get("Key") or {name: op.get("Item", {}).get(name) for name in names}


def _refuse_failed_conditions(backend: Any, transact_items: list[dict[str, Any]]) -> None:
    """TransactionCanceledException, as moto words it, when any operation's condition fails on the
    items as they are now; nothing written."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import ConditionalCheckFailed, TransactionCanceledException

    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        condition = op.get("ConditionExpression")
        if table is None or condition is None:
            reasons.append((None, None, None))
            continue
        try:
            current = backend.get_item(op["TableName"], _transaction_key(table, op))
            holds = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(current)
        except Exception:  # a malformed operation: moto's own transaction answers it
            return
        if holds:
            reasons.append((None, None, None))
            continue
        old = (
            current.to_json()["Attributes"]
            if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
            else None
        )
        reasons.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)


# ---------------------------------------------------------------------------------------- gap 13
def patch_thread_list() -> Restore:
    """moto's interpreter appends every thread it starts (one per task with a timeout, per callback wait,
    per branch) to a module list, TMP_THREADS, and never removes them. On Python 3.13 a finished thread's
    8 MiB stack stays mapped while its Thread object lives, so a long run used up the process's memory
    maps (~4,000 batch lines): keep only live threads."""
    threads_module: Any = importlib.import_module("moto.stepfunctions.parser.utils")
    current: list[Any] = threads_module.TMP_THREADS
    return _replace_in_modules("moto.stepfunctions", "TMP_THREADS", current, LiveThreads(current))


class LiveThreads(list[threading.Thread]):
    """moto's TMP_THREADS: dropping finished threads on every append keeps it short."""

    def append(self, thread: threading.Thread) -> None:
        self[:] = [alive for alive in self if alive.is_alive()]
        super().append(thread)


# ---------------------------------------------------------------------------------------- gap 26
def patch_event_paths() -> Restore:
    """moto's EventBridge fills each target's input by parsing every input path (its default map has
    eight) with jsonpath_ng, whose parser builds its grammar tables on every call: about 4 ms of each
    PutEvents with one rule, before any delivery. A path's parse is a pure function of its text, so it is
    parsed once and reused (the parsed path is read-only). Only the name moto's events module imports
    when it fills a target is replaced; the Step Functions interpreter's own imports are left alone."""
    jsonpath_ext: Any = importlib.import_module("jsonpath_ng.ext")
    original = jsonpath_ext.parse
    jsonpath_ext.parse = functools.lru_cache(maxsize=1024)(original)

    def restore() -> None:
        jsonpath_ext.parse = original

    return restore


# ---------------------------------------------------------------------------------------- gap 32
def patch_request_dispatch() -> Restore:
    """moto's server, on every request, lists its own package folder (about 100 entries, each one a
    stat) to ask whether the host names a service, and lists every method of the response class with
    `inspect.getmembers` to find the action's: about 1 ms of each AWS call on an idle machine, work no
    AWS endpoint does per request. Both depend only on the installed moto and on the classes' methods,
    so each is made once: the folder's listing, and each class's method names. Apply it after every
    patch that adds or replaces a response method (the names are read on first use, then kept)."""
    backends: Any = importlib.import_module("moto.backends")
    responses: Any = importlib.import_module("moto.core.responses")
    original_modules = backends.list_of_moto_modules
    original_names = responses.method_names_from_class
    modules = tuple(original_modules())
    names: dict[type, list[str]] = {}

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    def method_names_from_class(clazz: type) -> list[str]:
        found = names.get(clazz)
        if found is None:
            found = names[clazz] = original_names(clazz)
        return found

    backends.list_of_moto_modules = list_of_moto_modules
    responses.method_names_from_class = method_names_from_class

    def restore() -> None:
        backends.list_of_moto_modules = original_modules
        responses.method_names_from_class = original_names

    return restore


# ---------------------------------------------------------------------------------------- gap 23
def patch_instance_tracking() -> Restore:
    """moto's BaseModel appends every instance it ever creates to its class's `instances_tracked` (read
    only by a reset and /moto-api/data.json) and never removes one: every SQS message after its deletion,
    every replaced DynamoDB item and every other model object stayed in memory (about 120 MiB per 1,000
    requests in the soak) after the state AWS keeps had let go of it. Only S3's classes are still tracked:
    moto's reset closes their keys' temporary files through that list."""
    from moto.core.common_models import BaseModel

    original = BaseModel.__dict__["__new__"]

    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        instance = super(BaseModel, cls).__new__(cls)  # type: ignore[misc]
        if cls.__module__.startswith("moto.s3."):
            cls.instances_tracked.append(instance)  # type: ignore[attr-defined]
        return instance

    BaseModel.__new__ = staticmethod(new)  # type: ignore[method-assign]

    def restore() -> None:
        BaseModel.__new__ = original  # type: ignore[method-assign]

    return restore


# ---------------------------------------------------------------------------------------- gap 33
# The error codes Lambda's Invoke API documents (its API reference, "Errors").
LAMBDA_INVOKE_ERRORS = frozenset(
    {
        "EC2AccessDeniedException",
        "EC2ThrottledException",
        "EC2UnexpectedException",
        "EFSIOException",
        "EFSMountConnectivityException",
        "EFSMountFailureException",
        "EFSMountTimeoutException",
        "ENILimitReachedException",
        "InvalidParameterValueException",
        "InvalidRequestContentException",
        "InvalidRuntimeException",
        "InvalidSecurityGroupIDException",
        "InvalidSubnetIDException",
        "InvalidZipFileException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "RecursiveInvocationException",
        "RequestTooLargeException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "ServiceException",
        "SnapStartException",
        "SnapStartNotReadyException",
        "SnapStartTimeoutException",
        "SubnetIPAddressLimitReachedException",
        "TooManyRequestsException",
        "UnsupportedMediaTypeException",
    }
)


def lambda_task_error(code: str, status: int) -> str:
    """The error Step Functions reports for a Lambda invoke the service answered with an error: one of
    Lambda's own codes as `Lambda.<code>`; any other server error (an outage's 503 from in front of the
    service) as the SDK's generic `Lambda.AWSLambdaException`, which the workflows retry as Step Functions
    advises."""
    if code in LAMBDA_INVOKE_ERRORS:
        return f"Lambda.{code}"
    if status >= 500 or not code:
        return "Lambda.AWSLambdaException"
    return f"Lambda.{code}"


def patch_lambda_service_errors() -> Restore:
    """moto's interpreter reports a Lambda task whose invoke the Lambda service refused (an HTTP error:
    throttled, the function not ready) as the error `Exception`; Step Functions reports it as
    `Lambda.<the service's error code>` (`Lambda.TooManyRequestsException`, `Lambda.ServiceException`),
    which is what a workflow's Retry and Catch name."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName

    module: Any = importlib.import_module(
        "moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda"
    )
    task = module.StateTaskLambda
    original = task._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        failure = original(self, env, ex)
        if isinstance(ex, ClientError):
            error = lambda_task_error(
                ex.response.get("Error", {}).get("Code", ""),
                int(ex.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0),
            )
            failure.error_name = CustomErrorName(error)
            details = failure.event_details or {}
            if "lambdaFunctionFailedEventDetails" in details:
                details["lambdaFunctionFailedEventDetails"]["error"] = error
        return failure

    task._from_error = from_error

    def restore() -> None:
        task._from_error = original

    return restore


# ---------------------------------------------------------------------------------------- gap 34
def patch_deleted_receipts(remembered: int = 1_000) -> Restore:
    """moto's SQS remembers the receipt handle of every message a queue ever deleted (so that deleting it
    again succeeds), for ever: about 0.6 KiB per request across the requests and subscriber queues
    (`make soak`). SQS honours a repeated delete of a recent handle, not of every handle since the queue
    was made: each queue now remembers the most recent `remembered` of them."""
    from moto.sqs.models import Queue

    original_init = Queue.__init__

    def init(queue: Any, *args: Any, **kwargs: Any) -> None:
        original_init(queue, *args, **kwargs)
        queue.deleted_messages = RecentSet(remembered)

    Queue.__init__ = init  # type: ignore[method-assign,assignment]

    def restore() -> None:
        Queue.__init__ = original_init  # type: ignore[method-assign]

    return restore


class RecentSet:
    """A set that remembers only its most recent `size` members (the oldest added is forgotten first);
    what moto's Queue does with its deleted receipt handles (`in`, `update`, `add`)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._members: dict[Any, None] = {}

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._members))

    def add(self, member: Any) -> None:
        self._members.pop(member, None)
        self._members[member] = None
        while len(self._members) > self._size:
            del self._members[next(iter(self._members))]

    def update(self, members: Iterable[Any]) -> None:
        for member in members:
            self.add(member)

    def discard(self, member: Any) -> None:
        self._members.pop(member, None)


# ---------------------------------------------------------------------------------------- gap 30
def patch_finished_environments() -> Restore:
    """moto's interpreter keeps each execution's whole evaluation environment after the execution ended
    (its stack, heap, frames of every branch and iteration, context object and variables; about 24 KiB
    per inference request beside its 130 KiB history, `make soak`), read afterwards only for the
    history, the task-token callbacks, the map runs and the final program state. AWS keeps an ended
    execution's history and description, not its interpreter: once an execution has ended (its status
    and output reflected), the environment is replaced by what is still read of it. Of an Express
    execution, whose history AWS does not keep at all (a queue batch's holds every item's state inputs
    and outputs), not even the history: its description (status, input, start and stop) stays."""
    module: Any = importlib.import_module("moto.stepfunctions.parser.backend.execution")
    communication = module.BaseExecutionWorkerCommunication
    original = communication.terminated

    def terminated(self: Any) -> None:
        original(self)
        worker: Any = getattr(self.execution, "exec_worker", None)
        env = getattr(worker, "env", None)
        # (TestState's executions read their environment's inspection data afterwards: left alone)
        if type(self).__module__ == module.__name__ and env is not None:
            # An Express execution's history is not kept by AWS at all (gap 28): none is kept here either
            # (moto records the type on the state machine: an execution's own sm_type says STANDARD)
            express = getattr(self.execution.state_machine, "type", "") == "EXPRESS"
            worker.env = FinishedEnvironment(env, keep_history=not express)

    communication.terminated = terminated

    def restore() -> None:
        communication.terminated = original

    return restore


class FinishedEnvironment:
    """What moto still reads of an ended execution's environment: its history (event manager), its
    callbacks (a late SendTaskSuccess is refused through them), its map runs and its program state."""

    def __init__(self, env: Any, keep_history: bool = True) -> None:
        if keep_history:
            self.event_manager = env.event_manager
        else:
            from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

            self.event_manager = EventManager()
        self.callback_pool_manager = env.callback_pool_manager
        self.map_run_record_pool_manager = env.map_run_record_pool_manager
        self._program_state = env.program_state()

    def program_state(self) -> Any:
        return self._program_state

    def set_stop(self, stop_date: Any, cause: Any, error: Any) -> None:
        """StopExecution of an ended execution: nothing left to stop."""


# ---------------------------------------------------------------------------------------- gap 14
def patch_iam_evaluation(record: Callable[[str, Authorization], None]) -> Restore:
    """moto's own evaluation knows resources only for S3, SQS, IAM and STS and names some actions by their
    API operation; iam_authorization.py decides instead, and `record(principal ARN, decision)` is told
    of every decision (the stack writes them to its call log)."""
    from moto.iam.access_control import IAMRequestBase
    from moto.utilities.utils import get_partition

    original = IAMRequestBase.check_action_permitted

    def check_action_permitted(request: Any, resource: str) -> None:
        if request._action == "sts:GetCallerIdentity":  # always allowed, as on AWS
            return
        context = RequestContext(
            action=request._action,
            region=request._region,
            account_id=request.account_id,
            partition=get_partition(request._region),
            path=request._path,
            body=request._body if isinstance(request._body, bytes) else b"",
            moto_resource=resource,
        )
        documents = [_policy_document(policy) for policy in request._access_key.collect_policies()]
        caller = request._access_key.arn
        for action, target in required_permissions(context):
            allowed = is_allowed(documents, action, target)
            allowed = allowed and not denied_by_secret_policy(context, caller, action, target)
            if allowed and action == "events:PutEvents" and target:
                allowed = not _bus_policy_denies(context, target, request._access_key)
            decision = Authorization(action, target, allowed)
            record(request._access_key.arn, decision)
            if not decision.allowed:
                _deny(request, decision)

    original_request = IAMRequestBase._create_aws_request

    def signed_request(request: Any) -> Any:
        """The request as its client signed it: for a request without a payload (a REST GET) moto signs
        `data`, the routing parameters it parsed, so a signed GET with path parameters never matched."""
        aws_request = original_request(request)
        if request._method in ("GET", "HEAD", "DELETE") and not request._body:
            aws_request.data = b""
        return aws_request

    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign,assignment]
    IAMRequestBase._create_aws_request = signed_request  # type: ignore[method-assign,assignment]

    def restore() -> None:
        IAMRequestBase.check_action_permitted = original  # type: ignore[method-assign]
        IAMRequestBase._create_aws_request = original_request  # type: ignore[method-assign]

    return restore


def _deny(request: Any, decision: Authorization) -> None:
    """AWS's AccessDenied for the denied IAM action, in the protocol of the service: JSON services answer
    AccessDeniedException in JSON (moto would answer its XML body, which their clients cannot parse)."""
    from moto.core.exceptions import JsonRESTError

    headers = request._headers
    content_type = str(headers.get("Content-Type") or headers.get("content-type") or "")
    if "json" in content_type or request._service == "lambda":
        on = f" on resource: {decision.resource}" if decision.resource not in (None, "*") else ""
        message = f"User: {request._access_key.arn} is not authorized to perform: {decision.action}{on}"
        error = JsonRESTError("AccessDeniedException", message)
        error.code = 403
        raise error
    request._action = decision.action  # the denied IAM action, in the AccessDenied message
    request._raise_access_denied()


def _bus_policy_denies(context: RequestContext, bus_arn: str, access_key: Any) -> bool:
    """The bus's resource policy (as PutPermission stored it in moto) against each entry's source, for
    the caller's principal ARN (a role session's role ARN, as aws:PrincipalArn is on AWS)."""
    from moto.events.models import events_backends
    from moto.sts.models import sts_backends

    bus = events_backends[context.account_id][context.region].event_buses.get(bus_arn.rsplit("/", 1)[-1])
    if bus is None or not bus.policy:
        return False
    assumed = sts_backends[context.account_id][context.partition].get_assumed_role_from_access_key(
        str(getattr(access_key, "_access_key_id", ""))  # moto's AssumedRoleAccessKey (users have none)
    )
    principal_arn = assumed.role_arn if assumed is not None else str(access_key.arn)
    entries = json.loads(context.body or b"{}").get("Entries", [])
    return put_events_denied_by_bus_policy(
        json.loads(bus.policy).get("Statement", []),
        bus_arn=bus_arn,
        principal_arn=principal_arn,
        sources=[str(entry.get("Source", "")) for entry in entries],
    )


def _policy_document(policy: Any) -> dict[str, Any]:
    """moto hands a role's inline policy over as its parsed document, a user's inline policy as a record
    holding its JSON text, and a managed policy as a Policy object: the document of each."""
    from moto.iam.access_control import IAMPolicy

    if isinstance(policy, dict) and "Statement" in policy:
        return policy
    document: dict[str, Any] = IAMPolicy(policy)._policy_json
    return document


def enable_iam_enforcement() -> Restore:
    """From now on moto authenticates every request (an unknown key or a bad signature is refused) and
    authorizes it against the caller's IAM policies."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    previous = settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0

    def restore() -> None:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = previous

    return restore


# ---------------------------------------------------------------------------------------- gap 38
def patch_compressed_signatures() -> Restore:
    """botocore gzips a request body over 10 KiB for the operations that accept it (CloudWatch's
    PutMetricData) and signs the bytes it sends; moto decompresses the body before it checks the
    signature, hashes the decompressed bytes, and refused such a request (`SignatureDoesNotMatch`): the
    local monitoring's busy rounds lost their metrics. The signature is now checked against the body as
    sent; moto still reads the decompressed one."""
    import gzip

    from moto.core.responses import BaseResponse

    original_decompress = BaseResponse.decompress_request_body
    original_authenticate = BaseResponse._authenticate_and_authorize_action

    def decompress_request_body(self: Any, request: Any) -> None:
        if request.content_encoding == "gzip" and self.allow_request_decompression:
            sent = request.stream.read()
            self.signed_body = sent
            request.stream = gzip.GzipFile(fileobj=io.BytesIO(sent))
            request.get_data(parse_form_data=True)

    def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        sent = getattr(self, "signed_body", None)
        if sent is None:
            return original_authenticate(self, iam_request_cls, resource)
        decompressed, self.raw_body = self.raw_body, sent
        try:
            return original_authenticate(self, iam_request_cls, resource)
        finally:
            self.raw_body = decompressed

    BaseResponse.decompress_request_body = decompress_request_body  # type: ignore[method-assign]
    BaseResponse._authenticate_and_authorize_action = authenticate  # type: ignore[method-assign]

    def restore() -> None:
        BaseResponse.decompress_request_body = original_decompress  # type: ignore[method-assign]
        BaseResponse._authenticate_and_authorize_action = original_authenticate  # type: ignore[method-assign]

    return restore


# ---------------------------------------------------------------------------------------- gap 25
def patch_sender_id() -> Restore:
    """moto records every message as sent by one fixed id (AIDAIT2UOQQY3AUEKVGXU), whoever signed the
    SendMessage: a message sent by SendMessage or SendMessageBatch now has its signer's aws:userid as its
    SenderId (an IAM user's id, `<role id>:<session>` for a role session, the account for the root), as
    on SQS. The consumer records it as the queue path's caller, whose permissions apply to the request."""
    from moto.sqs.models import SQSBackend
    from moto.sqs.responses import SQSResponse

    signer = threading.local()
    originals = {
        "send_message": SQSResponse.send_message,
        "send_message_batch": SQSResponse.send_message_batch,
    }
    backend_send = SQSBackend.send_message

    def signed(name: str) -> Callable[[Any], Any]:
        original = originals[name]

        def answer(response: Any) -> Any:
            signer.user_id = _caller_user_id(response)
            try:
                return original(response)
            finally:
                signer.user_id = None

        return answer

    def send_message(backend: Any, *args: Any, **kwargs: Any) -> Any:
        message = backend_send(backend, *args, **kwargs)
        user_id = getattr(signer, "user_id", None)
        if user_id:
            message.sender_id = user_id
        return message

    for name in originals:
        setattr(SQSResponse, name, signed(name))
    SQSBackend.send_message = send_message  # type: ignore[method-assign,assignment]

    def restore() -> None:
        for name, original in originals.items():
            setattr(SQSResponse, name, original)
        SQSBackend.send_message = backend_send  # type: ignore[method-assign]

    return restore


# ---------------------------------------------------------------------------------------- gap 15
def patch_message_move_task() -> Restore:
    """moto has no SQS message move task, which the admin DLQ redrive starts. StartMessageMoveTask now
    moves every message of the source queue at once, before it answers: to DestinationArn, or without
    one back to the queue whose redrive policy names the source (SQS returns each message to the queue
    it was dead-lettered from; moto does not record which, so a source several queues name needs a
    DestinationArn). A moved message keeps its body and attributes and is a new message, as on AWS
    ("all redriven messages are considered new messages with a new messageID and enqueueTime"): a new
    id, receive count 0, visible, and sent by the task's starter (the move task sends with its
    starter's permissions, so its SenderId is the starter's aws:userid, not the original producer's)."""
    from moto.sqs.exceptions import InvalidParameterValue, QueueDoesNotExist
    from moto.sqs.responses import SQSResponse

    def start_message_move_task(response: Any) -> Any:
        from moto.core.responses import ActionResult

        backend = response.sqs_backend
        queues = list(backend.queues.values())
        source = next((q for q in queues if q.queue_arn == response._get_param("SourceArn")), None)
        if source is None:
            raise QueueDoesNotExist()
        destination_arn = response._get_param("DestinationArn")
        if destination_arn:
            destination = next((q for q in queues if q.queue_arn == destination_arn), None)
            if destination is None:
                raise QueueDoesNotExist()
        else:
            origins = [q for q in queues if q.dead_letter_queue is source]
            if len(origins) != 1:
                raise InvalidParameterValue(
                    f"{len(origins)} queues name {source.queue_arn} as their dead-letter queue; "
                    "the local stack needs a DestinationArn to move its messages"
                )
            [destination] = origins
        move_messages(source, destination, sender_id=_caller_user_id(response))
        return ActionResult({"TaskHandle": str(uuid.uuid4())})

    SQSResponse.start_message_move_task = start_message_move_task  # type: ignore[attr-defined]

    def restore() -> None:
        del SQSResponse.start_message_move_task  # type: ignore[attr-defined]

    return restore


# ---------------------------------------------------------------------------------------- gap 21
ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


def patch_rotate_secret() -> Restore:
    """moto's RotateSecret forgets the configured rotation function when the request names none (AWS
    uses it), sends the secret's name where AWS sends its ARN, and ignores a failed step: it moves
    AWSCURRENT to the new version (which may hold no value) whatever the function answered. Now, with a
    rotation function (named or configured): the new version gets AWSPENDING, the four steps run in
    order, each with the secret's ARN, and the first failed step ends the rotation with AWSCURRENT
    unchanged. AWS answers RotateSecret at once and runs the steps afterwards; here they run before it
    answers, and a failure answers InvalidRequestException naming the step (on AWS it shows in the
    function's logs and the AWSPENDING label left behind). Without a function: moto's own behaviour.
    And UpdateSecretVersionStage moving AWSCURRENT now moves moto's default version too (what a read
    without a stage answers), which moto left on the old version."""
    from moto.awslambda.utils import get_backend
    from moto.secretsmanager.exceptions import InvalidRequestException, ResourceNotFoundException
    from moto.secretsmanager.models import SecretsManagerBackend

    original = SecretsManagerBackend.rotate_secret
    original_stage = SecretsManagerBackend.update_secret_version_stage

    def update_secret_version_stage(
        backend: Any, secret_id: str, version_stage: str, remove_from_version_id: str, move_to_version_id: str
    ) -> tuple[str, str]:
        answer = original_stage(backend, secret_id, version_stage, remove_from_version_id, move_to_version_id)
        if version_stage == "AWSCURRENT" and move_to_version_id:
            # moto answers a read without a stage from its default version: it follows AWSCURRENT.
            backend.secrets[secret_id].set_default_version_id(move_to_version_id)
        return answer

    def rotate_secret(  # noqa: PLR0917 - moto's signature
        backend: Any,
        secret_id: str,
        client_request_token: str | None = None,
        rotation_lambda_arn: str | None = None,
        rotation_rules: dict[str, Any] | None = None,
        rotate_immediately: bool = True,
    ) -> str:
        secret = backend.secrets.get(secret_id) if backend._is_valid_identifier(secret_id) else None
        function_arn = rotation_lambda_arn or getattr(secret, "rotation_lambda_arn", "")
        if secret is None or not function_arn or not rotate_immediately or secret.is_deleted():
            return str(
                original(
                    backend,
                    secret_id,
                    client_request_token,
                    rotation_lambda_arn,
                    rotation_rules,
                    rotate_immediately,
                )
            )
        lambda_backend = get_backend(backend.account_id, backend.region_name)
        try:
            lambda_backend.get_function(function_arn)
        except Exception:
            raise ResourceNotFoundException(f"Resource not found for ARN '{function_arn}'.") from None
        if rotation_rules and "AutomaticallyAfterDays" in rotation_rules:
            secret.auto_rotate_after_days = int(rotation_rules["AutomaticallyAfterDays"])
        secret.rotation_lambda_arn = function_arn
        secret.rotation_enabled = True
        token = client_request_token or str(uuid.uuid4())
        secret.remove_version_stages_from_old_versions(["AWSPENDING"])
        secret.versions[token] = {
            "createdate": int(time.time()),
            "version_id": token,
            "version_stages": ["AWSPENDING"],
        }
        for step in ROTATION_STEPS:
            answer: dict[str, Any] = {}
            lambda_backend.invoke(
                function_arn,
                qualifier=None,
                body=json.dumps({"Step": step, "SecretId": secret.arn, "ClientRequestToken": token}),
                headers={},
                response_headers=answer,
            )
            if answer.get("x-amz-function-error"):
                raise InvalidRequestException(
                    f"The rotation function failed at {step}; AWSCURRENT is unchanged."
                )
        secret.last_rotation_date = int(time.time())
        return str(secret.to_short_dict())

    SecretsManagerBackend.rotate_secret = rotate_secret  # type: ignore[method-assign,assignment]
    backend_class: Any = SecretsManagerBackend
    backend_class.update_secret_version_stage = update_secret_version_stage

    def restore() -> None:
        SecretsManagerBackend.rotate_secret = original  # type: ignore[method-assign]
        SecretsManagerBackend.update_secret_version_stage = original_stage  # type: ignore[method-assign]

    return restore


# ---------------------------------------------------------------------------------------- gap 24
def patch_signing_keys_and_locks() -> Restore:
    from moto.kms.models import Key, kms_backends
    from moto.s3.models import FakeBucket, s3_backends

    create_key = Key.create_from_cloudformation_json
    create_bucket = FakeBucket.create_from_cloudformation_json

    def key_from_template(
        resource_name: str, template: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        properties = template["Properties"]
        if properties.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT":
            return create_key(resource_name, template, account_id, region_name, **kw)
        key = kms_backends[account_id][region_name].create_key(
            policy=properties["KeyPolicy"],
            key_usage=properties["KeyUsage"],
            key_spec=properties.get("KeySpec", "SYMMETRIC_DEFAULT"),
            description=properties.get("Description"),
            tags=properties.get("Tags", []),
        )
        key.enabled = properties.get("Enabled", True)
        return key

    def bucket_from_template(
        resource_name: str, template: Any, account_id: str, region_name: str, **kw: Any
    ) -> Any:
        bucket = create_bucket(resource_name, template, account_id, region_name, **kw)
        properties = template.get("Properties", {})
        if properties.get("ObjectLockEnabled") in (True, "true"):
            rule = properties.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {})
            backend = s3_backends[account_id][bucket.partition]
            bucket.versioning_status = "Enabled"
            backend.put_object_lock_configuration(
                bucket.name,
                lock_enabled=True,
                mode=rule.get("Mode"),
                # moto adds both to the time of a write: neither may be None
                days=int(rule.get("Days", 0)),
                years=int(rule.get("Years", 0)),
            )
        return bucket

    Key.create_from_cloudformation_json = staticmethod(key_from_template)  # type: ignore[assignment,method-assign]
    FakeBucket.create_from_cloudformation_json = staticmethod(bucket_from_template)  # type: ignore[assignment,method-assign]

    def restore() -> None:
        Key.create_from_cloudformation_json = create_key  # type: ignore[method-assign]
        FakeBucket.create_from_cloudformation_json = create_bucket  # type: ignore[method-assign]

    return restore


def _caller_user_id(response: Any) -> str:
    """The aws:userid of the request's signer: an IAM user's id, `<role id>:<session>` for a role
    session (moto's STS), else the account id (the root user's SenderId)."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    match = re.search(r"Credential=([^/]+)/", response.headers.get("Authorization", ""))
    account, partition = response.current_account, get_partition(response.region)
    key = match.group(1) if match else ""
    for user in list(iam_backends[account][partition].users.values()):
        if any(k.access_key_id == key for k in user.access_keys):
            return str(user.id)
    assumed = sts_backends[account][partition].get_assumed_role_from_access_key(key)
    return str(assumed.user_id) if assumed is not None else str(account)


def move_messages(source: Any, destination: Any, *, sender_id: str | None = None) -> None:
    """Every message of one moto queue (in flight or not) into another, each as a new message (new id)
    sent by `sender_id` (kept when None)."""
    with source._messages_lock:
        messages, source._messages = list(source._messages), []
        source.pending_messages.clear()
    for message in messages:
        message.id = str(uuid.uuid4())
        if sender_id is not None:
            message.sender_id = sender_id
        message.approximate_receive_count = 0
        message.approximate_first_receive_timestamp = None
        message.receipt_handle, message._old_receipt_handles = None, []
        message.visible_at = message.delayed_until = 0.0
        destination.add_message(message)


def _replace_in_modules(package: str, name: str, current: Any, replacement: Any) -> Restore:
    """Put `replacement` in place of `current` as `name` in every module of `package` that holds it
    (modules imported later take it from the defining module, which is among them)."""
    holders = [
        module
        for module_name, module in list(sys.modules.items())
        if module_name.startswith(package) and getattr(module, name, None) is current
    ]
    for module in holders:
        setattr(module, name, replacement)

    def restore() -> None:
        for module in holders:
            setattr(module, name, current)

    return restore


def patch_usage_metering(usage: UsageLog) -> Restore:
    """Every billable unit moto serves, written to the stack's usage log (`xpi_tools.local.usage`):
    DynamoDB capacity per API call (sized from the items before and after it, as DynamoDB bills), the
    KMS request S3 makes for an SSE-KMS object without a Bucket Key, EventBridge's 64 KB chunks. The
    calls themselves are logged by the IAM layer (`patch_iam_evaluation`)."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.models import EventsBackend
    from moto.s3.responses import S3Response

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, make(original))

    for operation, meter in _DYNAMODB_METERS.items():
        wrap(DynamoHandler, operation, functools.partial(_metered_dynamodb, usage, meter=meter))
    for operation, purpose in (("get_object", "Decrypt"), ("put_object", "GenerateDataKey")):
        wrap(S3Response, operation, functools.partial(_metered_s3, usage, purpose=purpose))

    def metered_events(original: Any) -> Any:
        def put_events(backend: Any, events: list[dict[str, Any]]) -> Any:
            usage.write("events", entries=len(events), chunks=sum(event_chunks(event) for event in events))
            return original(backend, events)

        return put_events

    wrap(EventsBackend, "put_events", metered_events)

    def restore() -> None:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)

    return restore


# What a metered call returns: its result, the read units and the write units it consumed.
Metered = tuple[Any, float, float]


def _item_size(table: Any, backend: Any, key: dict[str, Any]) -> int:
    """The stored size of the item with this key (0 when there is none)."""
    try:
        hash_key, range_key = backend.get_keys_value(table, key)
        item = table.get_item(hash_key, range_key)
    except Exception:  # a malformed key fails the call itself: nothing to meter
        return 0
    return int(item.size()) if item is not None else 0


def _key_of(table: Any, item: dict[str, Any]) -> dict[str, Any]:
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    return {name: item[name] for name in names if name in item}


def _raw_size(attributes: dict[str, Any]) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType

    return sum(len(name.encode("utf-8")) + DynamoType(value).size() for name, value in attributes.items())


def _write_meter(item_of: Callable[[dict[str, Any]], dict[str, Any] | None]) -> Callable[..., Any]:
    """A single-item write: billed on the larger of the item before and after (or as requested, when a
    condition fails), one write unit per KB."""

    def meter(handler: Any, body: dict[str, Any], call: Callable[[], Any]) -> Metered:
        table = handler.dynamodb_backend.get_table(body["TableName"])
        requested = item_of(body)
        key = body.get("Key") or _key_of(table, requested or {})
        before = _item_size(table, handler.dynamodb_backend, key)
        try:
            result = call()
        except Exception:
            size = max(before, _raw_size(requested) if requested else 0)
            handler._metered_units = (0.0, float(write_units(size)))
            raise
        after = _item_size(table, handler.dynamodb_backend, key)
        return result, 0.0, float(write_units(max(before, after)))

    return meter


def _read_meter(handler: Any, body: dict[str, Any], call: Callable[[], Any]) -> Metered:
    """GetItem: one read unit per 4 KB of the item, half when eventually consistent."""
    table = handler.dynamodb_backend.get_table(body["TableName"])
    size = _item_size(table, handler.dynamodb_backend, body["Key"])
    factor = 1.0 if body.get("ConsistentRead") else 0.5
    return call(), read_units(size) * factor, 0.0


def _items_read_meter(handler: Any, body: dict[str, Any], call: Callable[[], Any]) -> Metered:
    """Query and Scan: the returned items' sizes added up, then one read unit per 4 KB."""
    result = call()
    items = getattr(result, "result", {}).get("Items", []) if hasattr(result, "result") else []
    factor = 1.0 if body.get("ConsistentRead") else 0.5
    return result, read_units(sum(_raw_size(item) for item in items)) * factor, 0.0


def _transaction_meter(handler: Any, body: dict[str, Any], call: Callable[[], Any]) -> Metered:
    """TransactWriteItems: two write units per KB of each item it names."""
    backend = handler.dynamodb_backend
    units = 0
    for entry in body.get("TransactItems", []):
        (kind, request), *_ = entry.items()
        table = backend.get_table(request["TableName"])
        if kind == "Put":
            stored = _item_size(table, backend, _key_of(table, request["Item"]))
            size = max(_raw_size(request["Item"]), stored)
        else:
            size = _item_size(table, backend, request["Key"])
        units += 2 * write_units(size)
    return call(), 0.0, float(units)


_DYNAMODB_METERS: dict[str, Callable[..., Any]] = {
    "put_item": _write_meter(lambda body: body.get("Item")),
    "update_item": _write_meter(lambda body: None),
    "delete_item": _write_meter(lambda body: None),
    "get_item": _read_meter,
    "query": _items_read_meter,
    "scan": _items_read_meter,
    "transact_write_items": _transaction_meter,
}


def _metered_dynamodb(usage: UsageLog, original: Any, meter: Callable[..., Any]) -> Any:
    def handle(handler: Any) -> Any:
        body = handler.body if isinstance(handler.body, dict) else json.loads(handler.body or "{}")
        handler._metered_units = None
        try:
            result, read, write = meter(handler, body, lambda: original(handler))
        except Exception:
            if handler._metered_units is not None:  # a failed condition still consumes capacity
                read, write = handler._metered_units
                usage.dynamodb(str(body.get("TableName", "")), original.__name__, read=read, write=write)
            raise
        table = str(body.get("TableName", "")) or "transaction"
        usage.dynamodb(table, original.__name__, read=read, write=write)
        return result

    return handle


def _metered_s3(usage: UsageLog, original: Any, purpose: str) -> Any:
    """S3 calls KMS once per SSE-KMS object read or written, unless the object uses an S3 Bucket Key
    (then S3 reuses a bucket-level key and KMS is called about once per bucket key's lifetime)."""

    def handle(handler: Any) -> Any:
        result = original(handler)
        try:
            key = handler.backend.get_object(handler.bucket_name, handler.parse_key_name())
        except Exception:  # the call failed or named no object: nothing to meter
            key = None
        if key is not None and key.encryption == "aws:kms":
            bucket_key = str(key.bucket_key_enabled).lower() == "true"
            if not bucket_key:
                usage.write("kms", service="s3", operation=purpose, bucket=handler.bucket_name)
        return result

    return handle
