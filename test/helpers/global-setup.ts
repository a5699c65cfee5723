import type { TestProject } from "vitest/node";
import { startDynamoLocal, type DynamoLocal } from "../../local/dynamodb-local";

let dynamo: DynamoLocal | undefined;

/** One DynamoDB Local for the whole run, on a free loopback port; each test file makes its own tables. */
export async function setup(project: TestProject) {
  // the JVM can take more than 30 s to answer on a loaded two-core CI box
  dynamo = await startDynamoLocal({ startTimeoutMs: 120_000 });
  project.provide("dynamoEndpoint", dynamo.endpoint);
}

export async function teardown() {
  await dynamo?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    dynamoEndpoint: string;
  }
}
