// Drives the router's Lambda API with AWS's JavaScript SDK, as a user's script would: only the
// endpoint differs from AWS. Prints what it saw as one JSON document for the test to check.
import { readFileSync } from "node:fs";
import {
  LambdaClient,
  CreateFunctionCommand,
  GetFunctionCommand,
  InvokeCommand,
  ListFunctionsCommand,
  PublishVersionCommand,
  CreateAliasCommand,
  UpdateFunctionCodeCommand,
  waitUntilFunctionActiveV2,
  waitUntilFunctionUpdatedV2,
  ResourceNotFoundException,
} from "@aws-sdk/client-lambda";

const [endpoint, name, zipV1, zipV2] = process.argv.slice(2);
const client = new LambdaClient({ endpoint, region: "us-east-1", maxAttempts: 1 });
const decode = (payload) => JSON.parse(new TextDecoder().decode(payload));
const seen = {};

const created = await client.send(
  new CreateFunctionCommand({
    FunctionName: name,
    Runtime: "python3.11",
    Role: "arn:aws:iam::123456789012:role/lambda-role",
    Handler: "lambda_function.lambda_handler",
    Code: { ZipFile: readFileSync(zipV1) },
    Environment: { Variables: { COLOUR: "green" } },
  }),
);
seen.created = { state: created.State, sha: created.CodeSha256, version: created.Version };
await waitUntilFunctionActiveV2({ client, maxWaitTime: 30 }, { FunctionName: name });

const invoked = await client.send(
  new InvokeCommand({ FunctionName: name, Payload: JSON.stringify({ from: "js" }), LogType: "Tail" }),
);
seen.invoked = {
  status: invoked.StatusCode,
  executed: invoked.ExecutedVersion,
  payload: decode(invoked.Payload),
  log: Buffer.from(invoked.LogResult, "base64").toString(),
};

const published = await client.send(new PublishVersionCommand({ FunctionName: name }));
await client.send(new CreateAliasCommand({ FunctionName: name, Name: "live", FunctionVersion: published.Version }));
await client.send(new UpdateFunctionCodeCommand({ FunctionName: name, ZipFile: readFileSync(zipV2) }));
await waitUntilFunctionUpdatedV2({ client, maxWaitTime: 30 }, { FunctionName: name });
const latest = await client.send(new InvokeCommand({ FunctionName: name }));
const live = await client.send(new InvokeCommand({ FunctionName: name, Qualifier: "live" }));
seen.after_update = { latest: decode(latest.Payload).mark, live: decode(live.Payload).mark, live_version: live.ExecutedVersion };

const failed = await client.send(new InvokeCommand({ FunctionName: name, Payload: '{"fail": true}' }));
seen.failed = { error: failed.FunctionError, payload: decode(failed.Payload) };

const listed = await client.send(new ListFunctionsCommand({}));
seen.listed = listed.Functions.map((f) => f.FunctionName).includes(name);
const got = await client.send(new GetFunctionCommand({ FunctionName: name }));
seen.location = got.Code.Location;

try {
  await client.send(new GetFunctionCommand({ FunctionName: `${name}-missing` }));
  seen.missing = "no error";
} catch (error) {
  seen.missing = { name: error.name, isClass: error instanceof ResourceNotFoundException, status: error.$metadata.httpStatusCode };
}
console.log(JSON.stringify(seen));
