def handler(event, context):
    if event.get("fail"):
        raise RuntimeError(event["fail"])
    print("awslambdaric ran", context.aws_request_id)
    return {"runtime": "awslambdaric", "event": event, "function": context.function_name}
