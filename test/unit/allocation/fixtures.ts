import type { TenantHourUsage } from "../../../shared/allocation/allocate";
import { DEFAULT_ENDPOINTS, type FixedCostEndpoint } from "../../../shared/allocation/endpoints";

const endpoint = (name: string): FixedCostEndpoint => {
  const e = DEFAULT_ENDPOINTS.find((x) => x.endpointName === name);
  if (!e) throw new Error(`endpoint ${name} is not in DEFAULT_ENDPOINTS`);
  return e;
};

/** The seed's INT8 + LoRA endpoint (ml.g5.48xlarge). */
export const lora = endpoint("llama31-70b-lora");
/** The seed's INT4 endpoint (ml.g5.12xlarge). */
export const int4 = endpoint("llama31-70b-int4");

/** One tenant's usage of an endpoint-hour, as the ingest records it. */
export const usage = (tenantId: string, inferenceMs: number, tokens = 0, requests = 1): TenantHourUsage => ({
  tenantId,
  requests,
  inputTokens: tokens,
  outputTokens: 0,
  inferenceMs,
});
