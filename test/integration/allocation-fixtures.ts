import { EndpointCatalog, hourCostNanoUsd } from "../../shared/allocation/endpoints";
import { keys } from "../../shared/storage/keys";

/** The endpoint-hour the allocation integration tests split. */
export const EP = "llama31-70b-lora";
export const HOUR = "2026-11-25T20";
export const catalog = new EndpointCatalog();
export const COST = hourCostNanoUsd(catalog.get(EP));

/**
 * The five aggregates an allocation ADDs a tenant's share to, in this order: tenant month,
 * day, hour, then tenant x endpoint month, day.
 */
export function allocationTargets(tenantId: string, endpointName = EP, hour = HOUR) {
  const day = hour.slice(0, 10);
  const month = hour.slice(0, 7);
  return [
    keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month }),
    keys.aggregate(tenantId, { kind: "tenant", granularity: "day", period: day }),
    keys.aggregate(tenantId, { kind: "tenant", granularity: "hour", period: hour }),
    keys.aggregate(tenantId, { kind: "model", granularity: "month", period: month, modelId: endpointName }),
    keys.aggregate(tenantId, { kind: "model", granularity: "day", period: day, modelId: endpointName }),
  ];
}
