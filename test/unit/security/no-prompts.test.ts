import { BedrockRuntimeClient, ConverseCommand, ConverseStreamCommand } from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it, vi } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { IngestService } from "../../../shared/usage/ingest";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { CollectingSink } from "../dataplane/fakes";
import { MemoryUsageStore } from "../../helpers/memory-store";
import { envelope, invocation, record } from "../../helpers/events";

const SECRET_PROMPT = "PROMPT-SECRET-7f3a: my password is hunter2";
const SECRET_ANSWER = "ANSWER-SECRET-91bc";
const bedrock = mockClient(BedrockRuntimeClient);

afterEach(() => {
  bedrock.reset();
  vi.restoreAllMocks();
});

/** Everything written to the console while `fn` runs. */
async function consoleOf(fn: () => Promise<unknown>): Promise<string> {
  const lines: string[] = [];
  for (const m of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ")));
  }
  const out = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (lines.push(String(c)), true));
  try {
    await fn().catch(() => undefined);
  } finally {
    out.mockRestore();
  }
  return lines.join("\n");
}

describe("no prompts, answers or secrets leave through events or logs", () => {
  it("the Bedrock wrapper emits counts and ids only, also for a failing stream", async () => {
    const sink = new CollectingSink();
    const wrapper = new MeteredBedrock({ client: new BedrockRuntimeClient({ region: "us-west-2" }), sink });
    bedrock.on(ConverseCommand).resolves({
      $metadata: { requestId: "r-1" },
      output: { message: { role: "assistant", content: [{ text: SECRET_ANSWER }] } },
      usage: { inputTokens: 12, outputTokens: 3, totalTokens: 15 },
    } as never);
    async function* failing() {
      yield { contentBlockDelta: { delta: { text: SECRET_ANSWER }, contentBlockIndex: 0 } };
      throw new Error("stream reset");
    }
    bedrock.on(ConverseStreamCommand).resolves({ $metadata: { requestId: "r-2" }, stream: failing() } as never);
    const messages = [{ role: "user" as const, content: [{ text: SECRET_PROMPT }] }];

    const logs = await consoleOf(async () => {
      await wrapper.converse({ modelId: "anthropic.claude-3-haiku-20240307-v1:0", messages }, { tenantId: "t-sec" });
      const s = await wrapper.converseStream({ modelId: "anthropic.claude-3-haiku-20240307-v1:0", messages }, { tenantId: "t-sec" });
      for await (const _ of s.stream ?? []) void _;
    });

    expect(sink.events.length).toBe(2);
    const emitted = JSON.stringify(sink.events);
    for (const secret of [SECRET_PROMPT, SECRET_ANSWER, "hunter2"]) {
      expect(emitted).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });

  it("the ingest quarantines a rejected record without its body, and says nothing of it in its outcome or logs", async () => {
    const store = new MemoryUsageStore();
    const service = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35 });
    const bad = record(envelope({ ...invocation(), prompt: SECRET_PROMPT }));
    let outcome = "";
    const logs = await consoleOf(async () => {
      const r = await service.ingest([bad]);
      outcome = JSON.stringify([...r.outcomes.values()]);
    });
    expect(store.quarantined).toHaveLength(1);
    expect(store.quarantined[0]).toMatchObject({ reason: "schema", shape: { fields: expect.arrayContaining([`detail.prompt: string(${SECRET_PROMPT.length})`]) } });
    for (const secret of [SECRET_PROMPT, "hunter2"]) {
      expect(JSON.stringify(store.quarantined)).not.toContain(secret);
      expect(outcome).not.toContain(secret);
      expect(logs).not.toContain(secret);
    }
  });
});
