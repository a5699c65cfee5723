import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Context } from "aws-lambda";

/** Project root: handler paths in `QUEUE_RULES` / `HTTP_ROUTES` are relative to it. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const LOCAL_ACCOUNT_ID = "000000000000";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type LambdaHandler = (event: any, context: Context) => unknown;

/** A handler spec as declared in the shared route/rule data (`functions/sqs/ingest.handler`), split. */
export interface HandlerRef {
  module: string;
  exportName: string;
}

export class LocalHandlerMissingError extends Error {
  constructor(
    message: string,
    readonly ref: HandlerRef,
  ) {
    super(message);
    this.name = "LocalHandlerMissingError";
  }
}

export function parseHandlerRef(spec: string): HandlerRef {
  const dot = spec.lastIndexOf(".");
  if (dot <= 0) return { module: spec, exportName: "handler" };
  return { module: spec.slice(0, dot), exportName: spec.slice(dot + 1) };
}

const EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

/** The file a handler module resolves to, or undefined when nobody has written it yet. */
export function handlerFile(ref: HandlerRef, root = PROJECT_ROOT): string | undefined {
  for (const ext of EXTENSIONS) {
    const file = resolve(root, `${ref.module}${ext}`);
    if (existsSync(file)) return file;
  }
  return undefined;
}

/**
 * Loads the same handler module Lambda runs. A module that does not exist yet is reported
 * with {@link LocalHandlerMissingError} (and looked up again next time, so a handler written
 * while the stack runs is picked up on its first use).
 */
export class HandlerLoader {
  private readonly loaded = new Map<string, Promise<LambdaHandler>>();

  constructor(private readonly root = PROJECT_ROOT) {}

  load(spec: string): Promise<LambdaHandler> {
    const cached = this.loaded.get(spec);
    if (cached) return cached;
    const ref = parseHandlerRef(spec);
    const file = handlerFile(ref, this.root);
    if (!file) {
      return Promise.reject(
        new LocalHandlerMissingError(`handler module ${ref.module}.ts does not exist (yet)`, ref),
      );
    }
    const promise = import(pathToFileURL(file).href).then((mod: Record<string, unknown>) => {
      const fn = mod[ref.exportName];
      if (typeof fn !== "function") {
        throw new LocalHandlerMissingError(`${ref.module} has no exported function '${ref.exportName}'`, ref);
      }
      return fn as LambdaHandler;
    });
    // A failed import (syntax error mid-edit) is not cached, so a fix is picked up.
    promise.catch(() => this.loaded.delete(spec));
    this.loaded.set(spec, promise);
    return promise;
  }
}

/** A Lambda-like context: what handlers (and Powertools) read from it. */
export function lambdaContext(functionName: string, region: string, timeoutMs: number): Context {
  const deadline = Date.now() + timeoutMs;
  const unsupported = () => {
    throw new Error("callback-style completion is not supported; return a promise");
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:${region}:${LOCAL_ACCOUNT_ID}:function:${functionName}`,
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `local/[$LATEST]${randomUUID().replace(/-/g, "")}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
