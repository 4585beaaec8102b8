// A Lambda Node.js handler as AWS documents them, unmodified.
exports.handler = async (event, context) => {
  console.log("node got", JSON.stringify(event));
  if (event.fail) {
    throw new TypeError(event.fail);
  }
  return {
    runtime: "nodejs",
    event,
    functionName: context.functionName,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    remaining: context.getRemainingTimeInMillis(),
  };
};
