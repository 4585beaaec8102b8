def fn(event, context):
    return {"from": "pkg.mod.fn", "event": event}
