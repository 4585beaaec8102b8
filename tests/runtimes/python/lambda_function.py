import logging
import os
import time

logger = logging.getLogger()
VERSION = "v1"


def lambda_handler(event, context):
    print("print from", VERSION)
    logger.info("logged from %s", VERSION)
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise ValueError(event["fail"])
    return {
        "version": VERSION,
        "pid": os.getpid(),
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "task_root": os.environ["LAMBDA_TASK_ROOT"],
        "cwd": os.getcwd(),
        "handler": os.environ["_HANDLER"],
        "uid": os.getuid(),
    }
