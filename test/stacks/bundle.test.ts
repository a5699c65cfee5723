import { existsSync } from "node:fs";
import { Template } from "aws-cdk-lib/assertions";
import type { Stack as CdkStack } from "aws-cdk-lib";
import { App, getStack } from "sst/constructs";
import { useProject } from "sst/project.js";
import { beforeAll, describe, expect, it } from "vitest";
import config from "../../sst.config";
import { HTTP_ROUTES } from "../../shared/http/routes";
import { QUEUE_RULES } from "../../shared/events/rules";
import { Api } from "../../stacks/Api";
import { Ingest } from "../../stacks/Ingest";
import { ALLOCATE_HANDLER, BILLING_EXPORT_HANDLER, Jobs, OUTBOX_SWEEP_HANDLER, RECONCILE_HANDLER } from "../../stacks/Jobs";
import { Storage } from "../../stacks/Storage";
import { initTestProject } from "./synth";

/**
 * `app.finish()` is what `sst deploy` runs before CloudFormation: it bundles every function with
 * esbuild (locally, no network; under NODE_ENV=test SST also skips its bootstrap lookup) and swaps
 * the placeholder code for the bundle. These tests prove the handlers the stacks point at exist,
 * bundle, and run on nodejs22.x.
 */
const handlers = [...QUEUE_RULES.map((r) => r.handler), ...HTTP_ROUTES.map((r) => r.handler), ALLOCATE_HANDLER, BILLING_EXPORT_HANDLER, OUTBOX_SWEEP_HANDLER, RECONCILE_HANDLER];
const missing = [...new Set(handlers.map((h) => h.slice(0, h.lastIndexOf("."))))].filter(
  (file) => !existsSync(`${file}.ts`) && !existsSync(`${file}.js`),
);

function bundledFunctions(stack: CdkStack) {
  return Object.values(Template.fromStack(stack).findResources("AWS::Lambda::Function")).filter(
    (r) => r.Properties.Environment?.Variables?.SST_APP,
  );
}

async function newApp(): Promise<App> {
  const { config: project } = useProject();
  return new App({ mode: "deploy", stage: "test", name: project.name, region: project.region ?? "us-west-2" });
}

beforeAll(async () => {
  await initTestProject();
});

describe("bundling (app.finish)", () => {
  it("bundles the queue consumers and scheduled jobs: real handler and code asset, runtime nodejs22.x", async () => {
    const app = await newApp();
    app.stack(Storage).stack(Ingest).stack(Jobs);
    await app.finish();

    const fns = [Ingest, Jobs].flatMap((fn) => bundledFunctions(getStack(fn) as CdkStack));
    expect(fns.map((f) => f.Properties.Handler).sort()).toEqual(
      [...QUEUE_RULES.map((r) => r.handler), ALLOCATE_HANDLER, BILLING_EXPORT_HANDLER, OUTBOX_SWEEP_HANDLER, RECONCILE_HANDLER].sort(),
    );
    for (const fn of fns) {
      expect(fn.Properties.Runtime).toBe("nodejs22.x");
      expect(fn.Properties.Code.S3Key).toMatch(/\.zip$/);
    }
  }, 120_000);

  it(
    "bundles every handler of the app",
    async () => {
      expect(missing, "handler modules the stacks point at but nobody has written").toEqual([]);
      const app = await newApp();
      await config.stacks(app);
      await app.finish();

      const fns = [Ingest, Api, Jobs].flatMap((fn) => bundledFunctions(getStack(fn) as CdkStack));
      expect(fns.map((f) => f.Properties.Handler).sort()).toEqual([...handlers].sort());
      for (const fn of fns) expect(fn.Properties.Runtime).toBe("nodejs22.x");
    },
    // One esbuild bundle per function (SST bundles each route's function on its own): ~50 s on two busy cores.
    240_000,
  );
});
