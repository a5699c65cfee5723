import { Template } from "aws-cdk-lib/assertions";
import { afterAll } from "vitest";
import type { Stack as CdkStack } from "aws-cdk-lib";
import { App, getStack } from "sst/constructs";
import type { FunctionalStack } from "sst/constructs/FunctionalStack.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initProject, setProject, useProject } from "sst/project.js";
import config from "../../sst.config";
import { addNagChecks, nagErrors } from "./nag";

/**
 * Synthesizes the whole app offline, in the order sst.config.ts gives, without `sst deploy`.
 * Every app synthesized here runs cdk-nag's AwsSolutions pack (suppressions: one list,
 * stacks/nag-suppressions.ts): `template()` fails on any unsuppressed error of its stack, so
 * every stack any test looks at is checked.
 *
 * Function code is not bundled: SST's Function gives every Lambda placeholder inline code and
 * defers the esbuild bundling to `app.finish()` (which `sst deploy` calls). Tests that need the
 * real bundle (handler, runtime) call `finish()` themselves; esbuild runs locally, no network.
 */
export interface Synth {
  app: App;
  stack(fn: FunctionalStack<unknown>): CdkStack;
  template(fn: FunctionalStack<unknown>): Template;
}

let initialized = false;
let outDir: string | undefined;

// Each test file runs in its own worker process; drop its bundles and generated types after it.
afterAll(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

/**
 * initProject reads sst.config.ts and fixes the stage for the process. Every App then rewrites
 * `<out>/types` and bundles into `<out>/artifacts`; with test files in parallel workers that
 * shared `.sst` races (ENOTEMPTY), so each worker gets its own out directory.
 */
export async function initTestProject(): Promise<void> {
  if (initialized) return;
  await initProject({ stage: "test" });
  const project = useProject();
  const out = mkdtempSync(join(tmpdir(), "genai-metering-sst-"));
  outDir = out;
  setProject({ ...project, paths: { ...project.paths, out, artifacts: join(out, "artifacts") } });
  initialized = true;
}

export async function synth(options: { stage?: string; env?: Record<string, string | undefined> } = {}): Promise<Synth> {
  const stage = options.stage ?? "test";
  // One project per worker; the App below carries the stage under test.
  await initTestProject();
  const { config: project } = useProject();
  const saved = setEnv(options.env ?? {});
  try {
    const app = new App({ mode: "deploy", stage, name: project.name, region: project.region ?? "us-west-2" });
    await config.stacks(app);
    addNagChecks(app);
    const templates = new Map<FunctionalStack<unknown>, Template>();
    return {
      app,
      stack: (fn) => getStack(fn) as CdkStack,
      template(fn) {
        let t = templates.get(fn);
        if (!t) {
          const stack = getStack(fn) as CdkStack;
          t = Template.fromStack(stack);
          const errors = nagErrors(stack);
          if (errors.length > 0) throw new Error(`cdk-nag (AwsSolutions) errors in ${stack.stackName}:\n${errors.join("\n")}`);
          templates.set(fn, t);
        }
        return t;
      },
    };
  } finally {
    setEnv(saved);
  }
}

function setEnv(values: Record<string, string | undefined>): Record<string, string | undefined> {
  const previous: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(values)) {
    previous[key] = process.env[key];
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  return previous;
}

type Resources = Record<string, { Type: string; Properties?: Record<string, any>; [k: string]: any }>;

/** Every IAM statement in a template, with the logical id of its policy. */
export function statements(template: Template): { policy: string; statement: Record<string, any> }[] {
  const policies = template.findResources("AWS::IAM::Policy") as Resources;
  return Object.entries(policies).flatMap(([policy, r]) =>
    (r.Properties?.PolicyDocument?.Statement ?? []).map((statement: Record<string, any>) => ({ policy, statement })),
  );
}

/** Statements of the IAM policies attached to the role with logical id `roleId`. */
export function roleStatements(template: Template, roleId: string): Record<string, any>[] {
  const policies = template.findResources("AWS::IAM::Policy") as Resources;
  return Object.values(policies)
    .filter((p) => (p.Properties?.Roles ?? []).some((r: any) => r?.Ref === roleId))
    .flatMap((p) => p.Properties?.PolicyDocument?.Statement ?? []);
}

export function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Actions of all Allow statements, flattened. */
export function allowedActions(stmts: Record<string, any>[]): string[] {
  return stmts.filter((s) => s.Effect === "Allow").flatMap((s) => asArray<string>(s.Action));
}

/** Logical id from `{ "Fn::GetAtt": [id, "Arn"] }` or `{ Ref: id }`. */
export function refId(value: any): string {
  if (value?.Ref) return value.Ref;
  if (value?.["Fn::GetAtt"]) return value["Fn::GetAtt"][0];
  throw new Error(`not a Ref/GetAtt: ${JSON.stringify(value)}`);
}

/** Logical id of the Lambda function an HTTP API route invokes. */
export function routeFunctionId(template: Template, routeKey: string): string {
  const routes = template.findResources("AWS::ApiGatewayV2::Route", { Properties: { RouteKey: routeKey } }) as Resources;
  const route = Object.values(routes)[0];
  if (!route) throw new Error(`no route ${routeKey}`);
  const integrationId = route.Properties!.Target["Fn::Join"][1][1].Ref as string;
  const integration = (template.toJSON().Resources as Resources)[integrationId];
  return refId(integration.Properties!.IntegrationUri);
}

/** Logical id of the role a function runs as. */
export function functionRoleId(template: Template, functionId: string): string {
  const fn = (template.toJSON().Resources as Resources)[functionId];
  return refId(fn.Properties!.Role);
}

/** Every resource of the given templates, as [logicalId, resource]. */
export function everyResource(templates: Template[]): [string, Resources[string]][] {
  return templates.flatMap((t) => Object.entries(t.toJSON().Resources as Resources));
}
