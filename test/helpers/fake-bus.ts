import { createServer } from "node:http";

/** One entry of a PutEvents request as the SDK sends it on the wire. */
export interface PutEventsEntry {
  EventBusName?: string;
  Source: string;
  DetailType: string;
  Detail: string;
}

export interface FakeBus {
  /** Endpoint for `AWS_ENDPOINT_URL_EVENTBRIDGE` / `--events-url`. */
  url: string;
  /** Entries of every accepted PutEvents call, in order. */
  published: PutEventsEntry[];
  /** While false, every PutEvents is refused with a 500 InternalException (the SDK throws). */
  up: boolean;
  close(): Promise<void>;
}

/**
 * A local HTTP server that speaks the EventBridge PutEvents API (JSON 1.1): records the entries
 * and accepts all of them while `up`, refuses the whole call otherwise.
 */
export async function startFakeBus(opts: { up?: boolean } = {}): Promise<FakeBus> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (!bus.up) {
        res.writeHead(500, { "content-type": "application/x-amz-json-1.1" });
        return res.end(JSON.stringify({ __type: "InternalException", message: "bus down" }));
      }
      const entries = (JSON.parse(body) as { Entries: PutEventsEntry[] }).Entries;
      bus.published.push(...entries);
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify({ FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `e-${bus.published.length}-${i}` })) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const bus: FakeBus = {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    published: [],
    up: opts.up ?? true,
    close: () => new Promise<void>((r, j) => server.close((e) => (e ? j(e) : r()))),
  };
  return bus;
}
