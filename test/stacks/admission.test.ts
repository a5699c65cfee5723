import { describe, expect, it } from "vitest";
import { Admission } from "../../stacks/Admission";
import { asArray, synth } from "./synth";

describe("admission stack", () => {
  it("gives the data plane a managed policy: writes only in ADMIT#/POOL# partitions, GetItem only on what admission reads", async () => {
    const s = await synth();
    const t = s.template(Admission);
    const policies = Object.values(t.findResources("AWS::IAM::ManagedPolicy"));
    expect(policies).toHaveLength(1);
    const statements = policies[0].Properties.PolicyDocument.Statement as any[];
    const actions = statements.flatMap((st) => asArray(st.Action));
    // no wildcard, no Scan/Query/Delete/BatchWrite
    expect(actions.every((a: string) => !a.includes("*"))).toBe(true);
    expect(actions).not.toContain("dynamodb:Scan");
    expect(actions).not.toContain("dynamodb:DeleteItem");
    const writer = statements.find((st) => asArray(st.Action).includes("dynamodb:UpdateItem"));
    expect(writer.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]).toEqual(["ADMIT#*", "POOL#*"]);
    const reader = statements.find((st) => !asArray(st.Action).includes("dynamodb:UpdateItem"));
    expect(asArray(reader.Action)).toEqual(["dynamodb:GetItem"]);
    expect(reader.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]).toEqual(["TENANT#*", "EVENT#*", "RUN#*"]);
    // every statement on the usage table only (no index, no other table)
    for (const st of statements) expect(asArray(st.Resource)).toHaveLength(1);
    t.hasOutput("DataPlaneAdmissionPolicyArn", {});
  });
});
