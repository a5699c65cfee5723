import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";

/** Maps a domain error class to an HTTP status: one place, by type, not by name strings. */
export type ErrorMapping = [new (...args: never[]) => Error, number][];

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

export function errorResponse(error: unknown, mapping: ErrorMapping): APIGatewayProxyStructuredResultV2 | undefined {
  for (const [type, status] of mapping) {
    if (error instanceof type) return json(status, { error: error.name, message: error.message });
  }
  return undefined;
}

export function query(event: APIGatewayProxyEventV2): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.queryStringParameters ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

export function intParam(value: string | undefined, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  return Number.isInteger(n) ? n : Number.NaN;
}
