"""What a flow run left in the Prefect API, read back by the tests that run flows."""

from __future__ import annotations


async def log_lines(flow_run_id) -> list[str]:
    """Log messages of a flow run and of its subflows (the stages on the Dask cluster)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )

    async with get_client() as client:
        children = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])))
        logs = await client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id, *(c.id for c in children)])))
    return [log.message for log in logs]
