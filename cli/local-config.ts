import { parseConfig, type RuntimeConfig } from "../shared/runtime/config";

/** The `parseArgs` options of every command that works on the usage table: `--endpoint-url` and `--table`. */
export const TABLE_OPTIONS = {
  "endpoint-url": { type: "string" },
  table: { type: "string", default: "genai-usage-local" },
} as const;

/**
 * Runtime config for an operator command run against a table (the local stack's by default):
 * the command's `--table` and `--endpoint-url` over the environment. DynamoDB Local accepts
 * any credentials, but the SDK wants some: dummy ones are set only for loopback endpoints.
 */
export function cliConfig(values: { table?: string; "endpoint-url"?: string }): RuntimeConfig {
  const cfg = parseConfig({
    ...process.env,
    USAGE_TABLE_NAME: values.table,
    AWS_ENDPOINT_URL_DYNAMODB: values["endpoint-url"] ?? process.env.AWS_ENDPOINT_URL_DYNAMODB,
  });
  const endpoint = cfg.AWS_ENDPOINT_URL_DYNAMODB;
  if (endpoint && /^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/.test(endpoint)) {
    process.env.AWS_ACCESS_KEY_ID ??= "local";
    process.env.AWS_SECRET_ACCESS_KEY ??= "local";
  }
  return cfg;
}
