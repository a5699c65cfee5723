import { BedrockClient, ConflictException, CreateInferenceProfileCommand, ListInferenceProfilesCommand } from "@aws-sdk/client-bedrock";
import type { ProfilePlan, ProfileSpec } from "../attribution";

/**
 * Bedrock application inference profiles: lists the region's (for the plan and its limit) and
 * creates planned ones with their cost-allocation tags. `clientRequestToken` makes a retried
 * create idempotent; a name that exists already (ConflictException) is looked up, not an error.
 */
export class BedrockProfiles {
  constructor(private readonly bedrock: BedrockClient) {}

  /** Every application inference profile of the region: name -> ARN. */
  async existing(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    let nextToken: string | undefined;
    do {
      const page = await this.bedrock.send(new ListInferenceProfilesCommand({ typeEquals: "APPLICATION", maxResults: 1000, nextToken }));
      for (const p of page.inferenceProfileSummaries ?? []) if (p.inferenceProfileName && p.inferenceProfileArn) out.set(p.inferenceProfileName, p.inferenceProfileArn);
      nextToken = page.nextToken;
    } while (nextToken);
    return out;
  }

  /** Creates the plan's profiles one by one (Bedrock's control-plane rate is low): name -> ARN. */
  async apply(plan: ProfilePlan): Promise<Map<string, string>> {
    const created = new Map<string, string>();
    for (const spec of plan.create) created.set(spec.inferenceProfileName, await this.create(spec));
    return created;
  }

  private async create(spec: ProfileSpec): Promise<string> {
    try {
      const out = await this.bedrock.send(
        new CreateInferenceProfileCommand({
          inferenceProfileName: spec.inferenceProfileName,
          description: `genai-metering ${spec.owner.kind} ${spec.owner.id}`,
          clientRequestToken: spec.clientRequestToken,
          modelSource: { copyFrom: spec.copyFrom },
          tags: spec.tags,
        }),
      );
      if (!out.inferenceProfileArn) throw new Error(`CreateInferenceProfile returned no ARN for ${spec.inferenceProfileName}`);
      return out.inferenceProfileArn;
    } catch (error) {
      if (!(error instanceof ConflictException)) throw error;
      // created by an earlier run whose response was lost: find it by name
      const arn = (await this.existing()).get(spec.inferenceProfileName);
      if (!arn) throw error;
      return arn;
    }
  }
}
