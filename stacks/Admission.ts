import { ManagedPolicy } from "aws-cdk-lib/aws-iam";
import { use, type StackContext } from "sst/constructs";
import { admissionKeys, keys } from "../shared/storage/keys";
import { Storage } from "./Storage";
import { partitionPrefix, tableStatement } from "./support";

/**
 * Admission before the call (shared/admission). The data plane talks to the table directly
 * (one conditional UpdateItem per lease or hard grant: no extra hop on the call path), so this
 * stack only creates the managed policy a data-plane role attaches:
 * - read/write only in the admission partitions (`ADMIT#<tenant>` budgets, `POOL#<pool>`
 *   windows): it cannot touch aggregates, config, the ledger or the quarantine;
 * - GetItem (no Query, no Scan) on what admission reads: the tenant's CONFIG and month
 *   aggregate (`TENANT#`), a ledger entry (`EVENT#`), its ingest epoch (`EPOCH#`) or, for an
 *   entry from before high-water commits, its group marker (`RUN#`).
 * To bind a data plane to its own tenants, narrow the `ADMIT#*` / `TENANT#*` patterns in a copy.
 */
export const ADMISSION_WRITE_ACTIONS = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"] as const;
export const ADMISSION_READ_ACTIONS = ["dynamodb:GetItem"] as const;
export const ADMISSION_WRITE_PARTITIONS = [admissionKeys.budgetPartitionPrefix, admissionKeys.poolPartitionPrefix] as const;
export const ADMISSION_READ_PARTITIONS = [
  keys.tenant(""),
  partitionPrefix(keys.ledger("t", "e").pk),
  partitionPrefix(keys.epoch("e").pk),
  partitionPrefix(keys.commitMarker("r", 0).pk),
] as const;

export function Admission({ stack }: StackContext) {
  const { table } = use(Storage);
  const policy = new ManagedPolicy(stack, "DataPlaneAdmissionPolicy", {
    description: "Data-plane admission: budgets and pool windows of the usage table, and the reads they reconcile against",
    statements: [
      tableStatement(table.cdk.table, ADMISSION_WRITE_ACTIONS, { leadingKeyPrefixes: ADMISSION_WRITE_PARTITIONS }),
      tableStatement(table.cdk.table, ADMISSION_READ_ACTIONS, { leadingKeyPrefixes: ADMISSION_READ_PARTITIONS }),
    ],
  });
  stack.addOutputs({ DataPlaneAdmissionPolicyArn: policy.managedPolicyArn });
  return { admissionPolicy: policy };
}
