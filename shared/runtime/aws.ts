import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { documentClient } from "../storage/adapters/dynamodb";
import type { RuntimeConfig } from "./config";

/**
 * SDK clients, built once per process from the config. Endpoint overrides point them at the
 * local stack (DynamoDB Local, the local PutEvents bus); on Lambda they are unset.
 */
export interface AwsClients {
  dynamo: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  eventBridge: EventBridgeClient;
}

let cached: { key: string; clients: AwsClients } | undefined;

export function awsClients(cfg: RuntimeConfig): AwsClients {
  const key = `${cfg.AWS_REGION}|${cfg.AWS_ENDPOINT_URL_DYNAMODB ?? ""}|${cfg.AWS_ENDPOINT_URL_EVENTBRIDGE ?? ""}`;
  if (cached?.key === key) return cached.clients;
  const dynamo = new DynamoDBClient({ region: cfg.AWS_REGION, endpoint: cfg.AWS_ENDPOINT_URL_DYNAMODB });
  const clients = {
    dynamo,
    doc: documentClient(dynamo),
    eventBridge: new EventBridgeClient({ region: cfg.AWS_REGION, endpoint: cfg.AWS_ENDPOINT_URL_EVENTBRIDGE }),
  };
  cached = { key, clients };
  return clients;
}
