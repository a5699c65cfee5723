import { HOURS_PER_YEAR, SAGEMAKER_INSTANCE_RATES } from "../allocation/endpoints";
import type { PriceCatalog } from "../pricing/catalog";

/**
 * Cost planner (pure): what a year of a workload costs on per-token model APIs versus fixed
 * self-hosted endpoints, the throughput and concurrency the workload needs, whether each
 * endpoint has that capacity, and the volume at which an API costs as much as an endpoint.
 */
export const SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600; // 31,536,000

export interface Workload {
  tenants?: number;
  requestsPerYear: number;
  inputTokensPerRequest: number;
  outputTokensPerRequest: number;
  /** Mean time one request occupies a serving slot, seconds. */
  meanProcessingSeconds: number;
}

export type PlanOption =
  | { kind: "api"; label: string; modelId: string; inputPer1kUsd: number; outputPer1kUsd: number }
  | {
      kind: "endpoint";
      label: string;
      instanceType: string;
      instanceCount: number;
      hourlyUsd: number;
      rateName: string;
      /** Concurrent sequences one instance serves (seed: ~5 at 128K context). */
      maxConcurrencyPerInstance: number;
    };

export interface OptionResult {
  option: PlanOption;
  annualCostUsd: number;
  /** API: cost of one request; endpoint: annual cost / requests (at this volume). */
  costPerRequestUsd: number;
  /** Endpoint only: concurrent sequences available and whether they cover the need. */
  capacity?: { maxConcurrency: number; sufficient: boolean; maxRequestsPerYear: number };
}

export interface BreakEven {
  api: string;
  endpoint: string;
  /** Requests a year at which the API's annual cost equals the endpoint's. */
  requestsPerYear: number;
  /** False when the endpoint saturates below that volume (it would need more instances). */
  withinEndpointCapacity: boolean;
}

export interface PlanReport {
  workload: Workload;
  throughputRps: number;
  concurrency: number;
  options: OptionResult[];
  breakEvens: BreakEven[];
}

export class PlanInputInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PlanInputInvalidError";
  }
}

export function apiCostPerRequestUsd(w: Workload, o: Extract<PlanOption, { kind: "api" }>): number {
  return (w.inputTokensPerRequest * o.inputPer1kUsd + w.outputTokensPerRequest * o.outputPer1kUsd) / 1000;
}

export function endpointAnnualCostUsd(o: Extract<PlanOption, { kind: "endpoint" }>): number {
  return o.hourlyUsd * HOURS_PER_YEAR * o.instanceCount;
}

export function plan(w: Workload, options: readonly PlanOption[]): PlanReport {
  for (const [k, v] of Object.entries(w)) {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) throw new PlanInputInvalidError(`${k} must be a non-negative number`);
  }
  if (w.meanProcessingSeconds <= 0) throw new PlanInputInvalidError("meanProcessingSeconds must be positive");
  const throughputRps = w.requestsPerYear / SECONDS_PER_YEAR;
  // Little's law: requests in flight = arrival rate x time in the system
  const concurrency = throughputRps * w.meanProcessingSeconds;

  const results: OptionResult[] = options.map((option) => {
    if (option.kind === "api") {
      const perRequest = apiCostPerRequestUsd(w, option);
      return { option, annualCostUsd: w.requestsPerYear * perRequest, costPerRequestUsd: perRequest };
    }
    const annual = endpointAnnualCostUsd(option);
    const maxConcurrency = option.maxConcurrencyPerInstance * option.instanceCount;
    return {
      option,
      annualCostUsd: annual,
      costPerRequestUsd: w.requestsPerYear > 0 ? annual / w.requestsPerYear : Number.POSITIVE_INFINITY,
      capacity: {
        maxConcurrency,
        sufficient: concurrency <= maxConcurrency,
        maxRequestsPerYear: (maxConcurrency / w.meanProcessingSeconds) * SECONDS_PER_YEAR,
      },
    };
  });

  const breakEvens: BreakEven[] = [];
  for (const e of results) {
    if (e.option.kind !== "endpoint") continue;
    for (const a of results) {
      if (a.option.kind !== "api") continue;
      const requestsPerYear = e.annualCostUsd / a.costPerRequestUsd;
      breakEvens.push({
        api: a.option.label,
        endpoint: e.option.label,
        requestsPerYear,
        withinEndpointCapacity: requestsPerYear <= (e.capacity?.maxRequestsPerYear ?? 0),
      });
    }
  }
  return { workload: w, throughputRps, concurrency, options: results, breakEvens };
}

/** The seed's workload (seed-notes.md, "the cost example"). */
export const SEED_WORKLOAD: Workload = {
  tenants: 300,
  requestsPerYear: 30_000_000,
  inputTokensPerRequest: 307,
  outputTokensPerRequest: 533,
  meanProcessingSeconds: 4.4,
};

/**
 * The seed's six options. API prices come from the price catalog (region, day); endpoint
 * rates from the SageMaker rate table (1-year Savings Plan, no upfront).
 */
export function seedOptions(prices: PriceCatalog, region = "us-west-2", at = "2024-10-22"): PlanOption[] {
  const api = (label: string, modelId: string): PlanOption => {
    const p = prices.find(modelId, region, at);
    if (!p) throw new PlanInputInvalidError(`no price for ${modelId} in ${region} on ${at}`);
    return { kind: "api", label, modelId, inputPer1kUsd: p.inputPer1k, outputPer1kUsd: p.outputPer1k };
  };
  const endpoint = (label: string, instanceType: keyof typeof SAGEMAKER_INSTANCE_RATES): PlanOption => ({
    kind: "endpoint",
    label,
    instanceType,
    instanceCount: 1,
    hourlyUsd: SAGEMAKER_INSTANCE_RATES[instanceType].savingsPlan1yrNoUpfront,
    rateName: "1-yr Savings Plan, no upfront",
    // seed: at 128K context, INT8 on g5.48xlarge or INT4 on g5.12xlarge fit ~5 sequences
    maxConcurrencyPerInstance: 5,
  });
  return [
    api("Claude 3.5 Sonnet (Bedrock)", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    api("Claude 3 Haiku (Bedrock)", "anthropic.claude-3-haiku-20240307-v1:0"),
    api("Llama 3.1 70B Instruct (Bedrock)", "meta.llama3-1-70b-instruct-v1:0"),
    endpoint("SageMaker Llama 3.1 70B INT4", "ml.g5.12xlarge"),
    endpoint("SageMaker Llama 3.1 70B INT8", "ml.g5.48xlarge"),
    endpoint("SageMaker Llama 3.1 70B INT8 + LoRA", "ml.g5.48xlarge"),
  ];
}

/** "$267K": the seed's rounding of annual costs. */
export function thousands(usd: number): string {
  return `$${Math.round(usd / 1000).toLocaleString("en-US")}K`;
}

const int = (n: number) => Math.round(n).toLocaleString("en-US");

/** The report as the CLI prints it. */
export function formatPlan(r: PlanReport): string {
  const w = r.workload;
  const out: string[] = [];
  out.push(
    `Workload: ${w.tenants !== undefined ? `${int(w.tenants)} tenants, ` : ""}${int(w.requestsPerYear)} requests/yr, ` +
      `${w.inputTokensPerRequest} in / ${w.outputTokensPerRequest} out tokens per request, ${w.meanProcessingSeconds} s mean processing`,
  );
  const rounded = Math.round(r.throughputRps * 100) / 100;
  out.push(`Throughput needed: ${r.throughputRps.toFixed(2)} requests/s (${int(w.requestsPerYear)} / ${int(SECONDS_PER_YEAR)} s = ${r.throughputRps.toFixed(4)})`);
  out.push(
    `Concurrency needed: ${(rounded * w.meanProcessingSeconds).toFixed(2)} (${rounded.toFixed(2)} x ${w.meanProcessingSeconds} s; ` +
      `unrounded ${r.throughputRps.toFixed(4)} x ${w.meanProcessingSeconds} = ${r.concurrency.toFixed(2)})`,
  );
  out.push("");
  const rows: string[][] = [["option", "pricing", "a year", "exact", "per request", "capacity"]];
  for (const o of r.options) {
    const opt = o.option;
    const pricing =
      opt.kind === "api"
        ? `$${opt.inputPer1kUsd} in / $${opt.outputPer1kUsd} out per 1K`
        : `${opt.instanceCount} x ${opt.instanceType} $${opt.hourlyUsd}/h (${opt.rateName})`;
    const capacity = o.capacity
      ? `${o.capacity.maxConcurrency} concurrent ${o.capacity.sufficient ? ">=" : "<"} ${r.concurrency.toFixed(2)} needed: ${o.capacity.sufficient ? "ok" : "INSUFFICIENT"}`
      : "provider quota";
    rows.push([opt.label, pricing, thousands(o.annualCostUsd), `$${int(o.annualCostUsd)}`, `$${o.costPerRequestUsd.toFixed(6)}`, capacity]);
  }
  out.push(...table(rows));
  out.push("");
  out.push("Break-even (requests/yr at which the API costs as much as the endpoint):");
  const apis = r.options.filter((o) => o.option.kind === "api").map((o) => o.option.label);
  const be: string[][] = [["endpoint \\ api", ...apis]];
  for (const e of r.options.filter((o) => o.option.kind === "endpoint")) {
    be.push([
      e.option.label + ` (max ${int(e.capacity!.maxRequestsPerYear)}/yr)`,
      ...apis.map((a) => {
        const b = r.breakEvens.find((x) => x.api === a && x.endpoint === e.option.label)!;
        return `${int(b.requestsPerYear)}${b.withinEndpointCapacity ? "" : " (over capacity)"}`;
      }),
    ]);
  }
  out.push(...table(be));
  return out.join("\n");
}

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd());
}
