import type { TestProject } from "vitest/node";
import { startDynamoLocal, type DynamoLocal } from "../../local/dynamodb-local";

let dynamo: DynamoLocal | undefined;

/** One DynamoDB Local for the whole run, on a free loopback port; each test file makes its own tables. */
export async function setup(project: TestProject) {
  dynamo = await startDynamoLocal();
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
