import { Aspects, Stack } from "aws-cdk-lib";
import { Annotations, Match } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks, NagSuppressions } from "cdk-nag";
import type { IConstruct } from "constructs";
import { NAG_SUPPRESSIONS } from "../../stacks/nag-suppressions";

/**
 * cdk-nag's AwsSolutions pack on a whole app, with the suppressions of stacks/nag-suppressions.ts
 * (the one list). Must run before the app synthesizes (aspects run at synthesis).
 */
export function addNagChecks(app: IConstruct): void {
  Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
  const all = app.node.findAll();
  for (const entry of NAG_SUPPRESSIONS) {
    const suppression = { id: entry.id, reason: entry.reason, ...(entry.appliesTo ? { appliesTo: entry.appliesTo } : {}) };
    if (!entry.constructs) {
      for (const stack of all.filter((c): c is Stack => Stack.isStack(c))) NagSuppressions.addStackSuppressions(stack, [suppression]);
      continue;
    }
    for (const c of all.filter((c) => entry.constructs!.includes(c.node.id))) NagSuppressions.addResourceSuppressions(c, [suppression], true);
  }
}

/** Unsuppressed AwsSolutions errors of a synthesized stack, as `path: message` lines. */
export function nagErrors(stack: Stack): string[] {
  return Annotations.fromStack(stack)
    .findError("*", Match.stringLikeRegexp("AwsSolutions-.*"))
    .map((m) => `${m.id}: ${String(m.entry.data).split("\n")[0]}`);
}
