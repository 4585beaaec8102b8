"""The `context` argument handlers receive, shaped like AWS Lambda's Python context object."""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field

ARN_PREFIX = "arn:aws:lambda:local:000000000000:function:"


@dataclass
class LambdaContext:
    function_name: str
    function_version: str
    memory_limit_in_mb: int
    aws_request_id: str
    deadline_ms: int
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: object | None = None
    client_context: object | None = None
    qualifier: str | None = None  # the alias or version the caller named
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("router.function"))

    @classmethod
    def create(
        cls,
        function: str,
        version: str,
        memory_mb: int,
        request_id: str,
        timeout_s: float,
        deadline_ms: int | None = None,
        qualifier: str | None = None,
    ) -> LambdaContext:
        """The context of one call; `deadline_ms` when the caller fixed it already (an
        execution environment is told its caller's deadline)."""
        now = time.time()
        group, stream, logger = _names(function, version, int(now // 86400))
        return cls(
            function_name=function,
            function_version=version,
            memory_limit_in_mb=memory_mb,
            aws_request_id=request_id,
            deadline_ms=deadline_ms or int(now * 1000 + timeout_s * 1000),
            log_group_name=group,
            log_stream_name=stream,
            logger=logger,
            qualifier=qualifier,
        )

    @property
    def request_id(self) -> str:
        return self.aws_request_id

    @property
    def invoked_function_arn(self) -> str:
        """As Lambda's: with the alias or version when the caller named one."""
        arn = ARN_PREFIX + self.function_name
        return f"{arn}:{self.qualifier}" if self.qualifier else arn

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


@functools.lru_cache(maxsize=1024)
def _names(function: str, version: str, day: int) -> tuple[str, str, logging.Logger]:
    """Log group, log stream (one per UTC day, as Lambda's) and logger: formatted once a day per
    function version rather than on every call (logging.getLogger also takes a lock)."""
    date = time.strftime("%Y/%m/%d", time.gmtime(day * 86400))
    logger = logging.getLogger(f"router.function.{function}")
    return f"/aws/lambda/{function}", f"{date}/[{version}]router", logger
