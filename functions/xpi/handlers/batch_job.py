"""Batch workflow, the job path's steps (xpi.services.batch_job_path): after the split, start a job for
a large batch (StartJob: held, prepared through the on-demand path's steps, submitted once; or no job,
the batch runs on-demand as before); look at it once per growing wait (CheckJob); when it ended, make its
answered lines final, a page per invocation, and release the rest on-demand in input order (FinishJob).

Answers the workflow's `$.job` (xpi.models.batch_jobs.JobState)."""

from typing import Any

from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from xpi import dependencies
from xpi.handlers import contain_errors
from xpi.models.batch_jobs import JobState, JobStepInput, StartJobStep
from xpi.observability import logger, metrics, tracer
from xpi.services.batch_job_path import PageLimits, finish, look, start
from xpi.services.queue_processing import RetryBudget
from xpi.settings import get_settings

# What this handler's factories build from, imported at init (its first invocation imports none).
dependencies.preload(dependencies.batch_job_ports, dependencies.judgement, dependencies.queue_ports)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@contain_errors
@event_parser(model=JobStepInput)
def handler(event: JobStepInput, context: LambdaContext) -> dict[str, Any]:
    step, settings = event.root, get_settings()
    budget = RetryBudget(
        time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_s=settings.bedrock_timeout_s + 10,
    )
    state: JobState
    if isinstance(step, StartJobStep):
        logger.append_keys(batch_id=step.batch_id)
        state = start(
            step.batch_id,
            settings.batch_job_min_lines,
            settings.batch_job_max_wait_s,
            ports=dependencies.batch_job_ports,
            queue=dependencies.queue_ports,
            judge=dependencies.judgement,
            budget=budget,
        )
    elif step.step == "check":
        logger.append_keys(batch_id=step.job.batch_id)
        state = look(step.job, ports=dependencies.batch_job_ports(), max_wait_s=settings.batch_job_max_wait_s)
    else:
        logger.append_keys(batch_id=step.job.batch_id)
        state = finish(
            step.job,
            step.cursor,
            PageLimits(lines=settings.batch_job_page_lines, bytes=settings.batch_job_page_bytes),
            ports=dependencies.batch_job_ports(),
            queue=dependencies.queue_ports(),
            judge=dependencies.judgement,
            budget=budget,
        )
    logger.info(
        "job step",
        extra={
            "step": step.step,
            "submitted": state.submitted,
            "finished": state.finished,
            "collected": state.collected,
        },
    )
    return state.model_dump(mode="json")
