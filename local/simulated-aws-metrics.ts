import { invocationEventV1Schema, type InvocationEventV1 } from "../shared/events/invocation";
import { cloudWatchModelId, isBedrockModelId } from "../shared/reconciliation/service";
import type { LocalCloudWatch } from "./cloudwatch";

/**
 * What AWS itself would publish in CloudWatch for a set of calls: `AWS/Bedrock` per `ModelId`
 * (Invocations, InputTokenCount, OutputTokenCount, and the cache-token metrics for calls that
 * used the cache) and `AWS/SageMaker` per endpoint + variant (Invocations, ModelLatency in
 * microseconds). `shadowShare` adds usage no wrapper reported (a service calling Bedrock
 * directly): that share of AWS's Bedrock tokens and calls, per model and hour.
 *
 * Only the local stack can do this (AWS/ namespaces are AWS's; PutMetricData refuses them).
 */
/** Share of AWS's Bedrock usage the demo's simulated metrics hold that no wrapper reported. */
export const DEMO_SHADOW_SHARE = 0.02;

export interface SimulationSummary {
  bedrockCalls: number;
  sageMakerCalls: number;
  shadowInvocations: number;
  shadowTokens: number;
  /** Bedrock tokens AWS's figures now hold, shadow included. */
  awsBedrockTokens: number;
}

export function publishSimulatedAwsMetrics(cw: LocalCloudWatch, details: readonly unknown[], opts: { shadowShare?: number } = {}): SimulationSummary {
  const share = opts.shadowShare ?? 0;
  if (!(share >= 0 && share < 1)) throw new RangeError(`shadowShare must be in [0, 1), got ${share}`);
  // AWS sees each call once, whatever the wrapper re-sent; invalid reports are not calls
  const calls = new Map<string, InvocationEventV1>();
  for (const d of details) {
    const parsed = invocationEventV1Schema.safeParse(d);
    if (parsed.success) calls.set(`${parsed.data.tenantId}|${parsed.data.eventId}`, parsed.data);
  }
  const summary: SimulationSummary = { bedrockCalls: 0, sageMakerCalls: 0, shadowInvocations: 0, shadowTokens: 0, awsBedrockTokens: 0 };
  const perModelHour = new Map<string, { modelId: string; at: Date; invocations: number; input: number; output: number }>();
  const put = (namespace: string, metricName: string, dimensions: { Name: string; Value: string }[], at: Date, value: number, unit: string) =>
    cw.publishAwsMetric({ namespace, metricName, dimensions, at, value, unit });

  for (const e of calls.values()) {
    const at = new Date(e.occurredAt);
    if (e.provider === "bedrock" && isBedrockModelId(e.modelId)) {
      const dims = [{ Name: "ModelId", Value: cloudWatchModelId(e.modelId) }];
      put("AWS/Bedrock", "Invocations", dims, at, 1, "Count");
      put("AWS/Bedrock", "InputTokenCount", dims, at, e.inputTokens, "Count");
      put("AWS/Bedrock", "OutputTokenCount", dims, at, e.outputTokens, "Count");
      if (e.cacheReadInputTokens !== undefined) put("AWS/Bedrock", "CacheReadInputTokenCount", dims, at, e.cacheReadInputTokens, "Count");
      if (e.cacheWriteInputTokens !== undefined) put("AWS/Bedrock", "CacheWriteInputTokenCount", dims, at, e.cacheWriteInputTokens, "Count");
      summary.bedrockCalls++;
      summary.awsBedrockTokens += e.inputTokens + e.outputTokens + (e.cacheReadInputTokens ?? 0) + (e.cacheWriteInputTokens ?? 0);
      const key = `${dims[0].Value}|${e.occurredAt.slice(0, 13)}`;
      const m = perModelHour.get(key) ?? { modelId: dims[0].Value, at, invocations: 0, input: 0, output: 0 };
      m.invocations++;
      m.input += e.inputTokens;
      m.output += e.outputTokens;
      perModelHour.set(key, m);
    } else if (e.provider === "sagemaker") {
      const endpoint = e.endpointName ?? e.modelId;
      const dims = [
        { Name: "EndpointName", Value: endpoint },
        { Name: "VariantName", Value: e.variantName ?? "AllTraffic" },
      ];
      put("AWS/SageMaker", "Invocations", dims, at, 1, "Count");
      if (e.latencyMs !== undefined) put("AWS/SageMaker", "ModelLatency", dims, at, Math.round(e.latencyMs * 1000), "Microseconds");
      if (e.inferenceComponentName) {
        const ic = [{ Name: "InferenceComponentName", Value: e.inferenceComponentName }];
        put("AWS/SageMaker", "Invocations", ic, at, 1, "Count");
        if (e.latencyMs !== undefined) put("AWS/SageMaker", "ModelLatency", ic, at, Math.round(e.latencyMs * 1000), "Microseconds");
      }
      summary.sageMakerCalls++;
    }
  }

  if (share > 0) {
    // shadow / (ours + shadow) = share  =>  shadow = ours * share / (1 - share)
    const factor = share / (1 - share);
    for (const m of perModelHour.values()) {
      const dims = [{ Name: "ModelId", Value: m.modelId }];
      const invocations = Math.round(m.invocations * factor);
      const input = Math.round(m.input * factor);
      const output = Math.round(m.output * factor);
      put("AWS/Bedrock", "Invocations", dims, m.at, invocations, "Count");
      put("AWS/Bedrock", "InputTokenCount", dims, m.at, input, "Count");
      put("AWS/Bedrock", "OutputTokenCount", dims, m.at, output, "Count");
      summary.shadowInvocations += invocations;
      summary.shadowTokens += input + output;
      summary.awsBedrockTokens += input + output;
    }
  }
  return summary;
}
