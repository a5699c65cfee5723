/**
 * CloudWatch metric names and dimensions emitted by the handlers (EMF) and used by the
 * stack's alarms and dashboard. One list, so an alarm can never watch a metric nobody emits.
 */
export const METRICS_NAMESPACE_DEFAULT = "GenAIMetering";

export const PIPELINE_METRICS = {
  /** Distinct valid events counted (no dimensions besides service). */
  eventsIngested: "EventsIngested",
  /** Deliveries recognised as duplicates (success, counted once). */
  duplicates: "DuplicateEvents",
  /** Calls counted from an estimate whose exact counts (invocation log) replaced it. */
  estimatesCorrected: "EstimatesCorrected",
  /** Records reported failed for redelivery (not committed now; SQS retries, then the DLQ). */
  recordsRetried: "RecordsRetried",
  /** Records quarantined with a reason. */
  quarantined: "EventsQuarantined",
  /** Bedrock events whose model had no price. */
  unpriced: "UnpricedEvents",
  /** Milliseconds from occurredAt to aggregation (max per batch). */
  ingestLag: "IngestLagMs",
  /** Enforcement events published (throttle/downgrade/warning/restore). */
  enforcementEvents: "EnforcementEvents",
  /** Quota breaches (a tenant crossed 100% of a quota). */
  quotaBreaches: "QuotaBreaches",
  /** Data-plane emitter buffer overflow (events that could not be buffered). */
  emitterDropped: "EmitterBufferOverflow",
} as const;

/** HTTP API requests per handler (service dimension only). */
export const HTTP_METRICS = {
  requests: "ApiRequests",
  /** Answered 4xx: bad input, an invalid cursor, an unknown route. */
  clientErrors: "ApiClientErrors",
  /** Answered 500: an unexpected failure (logged with its cause). */
  serverErrors: "ApiServerErrors",
} as const;

/** What the scheduled jobs and the invocation-log reader did (no dimensions besides service). */
export const JOB_METRICS = {
  /** Endpoint-hours whose fixed cost a run split or re-split (allocated, reallocated or resumed). */
  endpointHoursAllocated: "EndpointHoursAllocated",
  /** Invoice lines the monthly billing export wrote. */
  invoiceLinesExported: "InvoiceLinesExported",
  /** Records read from Bedrock invocation-log objects. */
  invocationLogRecords: "InvocationLogRecords",
  /** Invocation-log records emitted as usage events. */
  invocationLogEmitted: "InvocationLogRecordsEmitted",
  /** Invocation-log records quarantined with a reason. */
  invocationLogRejected: "InvocationLogRecordsRejected",
} as const;

/** Cost-allocation metrics, dimensioned by tenant, tier and model (see README: cardinality). */
export const COST_METRICS = {
  costUsd: "CostUsd",
  inputTokens: "InputTokens",
  outputTokens: "OutputTokens",
  requests: "Requests",
  quotaUsedPercent: "QuotaUsedPercent",
} as const;

export const DIMENSIONS = {
  service: "service",
  tenant: "tenantId",
  tier: "tier",
  model: "modelId",
  /** Why admission refused a call: budget | budget-wait | pool-shed | pool-saturated (AdmissionRefused). */
  reason: "reason",
  /** The account quota pool that shed a call (AdmissionShed). */
  pool: "pool",
} as const;

/**
 * Admission before the call (shared/admission): counted by the data plane (EMF), dimensioned by
 * tier (and `reason` for refusals: budget | budget-wait | pool-shed | pool-saturated; `pool` for sheds); the
 * lease, reclaim and drift counts have no dimension but the data plane's `service`. The data
 * plane's Powertools `Metrics` must use this namespace (METRICS_NAMESPACE_DEFAULT unless the
 * stacks change it) for the dashboard to see them; its service name may be its own.
 */
export const ADMISSION_METRICS = {
  /** Calls refused before the model was called (TenantThrottledError). */
  refused: "AdmissionRefused",
  /** Calls moved to the tier's downgrade model because the budget was exhausted. */
  downgraded: "AdmissionDowngraded",
  /** Calls of a lower tier shed by an account quota pool near saturation. */
  shed: "AdmissionShed",
  /** Budget leases (or hard grants) taken and given back: the admission write rate. */
  leaseTaken: "AdmissionLeaseTaken",
  leaseReturned: "AdmissionLeaseReturned",
  /** Grants of dead callers settled from the ledger or charged in full. */
  reclaimed: "AdmissionGrantsReclaimed",
  /** Tokens the ingest counted that admission had not (usage outside the wrappers). */
  driftTokens: "AdmissionDriftTokens",
} as const;
