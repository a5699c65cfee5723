import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { inject } from "vitest";
import { startLocalStack, type LocalStack, type LocalStackOptions } from "../../local/stack";

let seq = 0;

/**
 * A local stack for one e2e test file: free HTTP port, the run's DynamoDB Local (from the
 * global setup) with a fresh table, log lines collected instead of printed.
 */
export async function startTestStack(opts: LocalStackOptions = {}): Promise<{ stack: LocalStack; logs: string[] }> {
  const dynamoEndpoint = inject("dynamoEndpoint");
  if (!/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(dynamoEndpoint)) {
    throw new Error(`refusing to run e2e tests against non-local endpoint ${dynamoEndpoint}`);
  }
  const logs: string[] = [];
  const stack = await startLocalStack({
    port: 0,
    dynamoEndpoint,
    tableName: `e2e-${process.pid}-${Date.now().toString(36)}-${seq++}`,
    log: (line) => logs.push(line),
    handlerLogs: "quiet",
    ...opts,
  });
  return { stack, logs };
}

/** The real AWS SDK EventBridge client, pointed at the local stack. */
export function eventBridgeClient(stack: LocalStack): EventBridgeClient {
  return new EventBridgeClient({
    endpoint: stack.url,
    region: stack.region,
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
}
