import { describe, expect, it } from "vitest";
import { UsageEmitter } from "../../../shared/dataplane/emitter";
import { createUsageEmitter } from "../../../shared/dataplane/adapters/eventbridge";
import { DataplaneConfigurationError } from "../../../shared/dataplane/errors";
import { ConfigurationError, eventBusName, parseConfig } from "../../../shared/runtime/config";

/**
 * Real EventBridge puts an event without a bus name (or to `default`) on the account's default
 * bus, where no rule of this pipeline listens: the usage is lost without an error. So the bus
 * name is required wherever a usage event is emitted, and the default bus is refused.
 */
const publisher = { put: async () => [] };

describe("usage events never go to the account's default bus", () => {
  it("UsageEmitter refuses to be built without a bus name", () => {
    expect(() => new UsageEmitter({ publisher, flushIntervalMs: 0 } as never)).toThrow(DataplaneConfigurationError);
    expect(() => new UsageEmitter({ publisher, eventBusName: "", flushIntervalMs: 0 })).toThrow(/needs eventBusName/);
    expect(() => createUsageEmitter({ clientConfig: { region: "us-west-2" }, flushIntervalMs: 0 } as never)).toThrow(DataplaneConfigurationError);
  });

  it("UsageEmitter refuses the default bus, by name or ARN", () => {
    for (const name of ["default", "arn:aws:events:us-west-2:123456789012:event-bus/default"]) {
      expect(() => new UsageEmitter({ publisher, eventBusName: name, flushIntervalMs: 0 }), name).toThrow(/default bus/);
    }
    expect(() => new UsageEmitter({ publisher, eventBusName: "genai-metering-bus", flushIntervalMs: 0 })).not.toThrow();
  });

  it("EVENT_BUS_NAME has no default, and a publishing handler fails loudly without it", () => {
    const cfg = parseConfig({ USAGE_TABLE_NAME: "usage" });
    expect(cfg.EVENT_BUS_NAME).toBeUndefined();
    expect(() => eventBusName(cfg)).toThrow(ConfigurationError);
    expect(() => eventBusName(cfg)).toThrow(/EVENT_BUS_NAME is not set/);
    expect(eventBusName(parseConfig({ USAGE_TABLE_NAME: "usage", EVENT_BUS_NAME: "pipeline-bus" }))).toBe("pipeline-bus");
  });

  it("EVENT_BUS_NAME=default is a configuration error", () => {
    expect(() => parseConfig({ USAGE_TABLE_NAME: "usage", EVENT_BUS_NAME: "default" })).toThrow(/EVENT_BUS_NAME: is the account's default bus/);
  });
});
