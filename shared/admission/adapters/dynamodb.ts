import { ConditionalCheckFailedException, type AttributeValue } from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { GetCommand, PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { effectivePolicy, quotaTokens } from "../../quota/model";
import { DynamoQuotaStore } from "../../quota/adapters/dynamodb";
import { DEFAULT_TIERS, TIER_NAMES, type TierCatalog, type TierName, type TierPolicy } from "../../quota/tiers";
import { admissionKeys, keys } from "../../storage/keys";
import type { UsageCounters } from "../../usage/model";
import { countedClaimOf, marksIn, type CountedClaim } from "../../usage/adapters/dynamodb";
import { reachedBy } from "../../usage/epochs";
import { UNLIMITED, budgetLimitKey, openingBudget, type BudgetLimits, type BudgetState, type Grant } from "../model";
import type { BudgetKey, BudgetStore, CountedEvent, PolicySource, PoolDeltas, PoolStore, PoolWindow, TakeResult, UsageTruth } from "../ports";

type Item = Record<string, unknown>;

/** Budget items live ~2 months after their month (reconciliation and audits), then TTL removes them. */
const BUDGET_TTL_SECONDS = 70 * 86_400;

const limitKey = budgetLimitKey;

function isConditionFailure(error: unknown): error is ConditionalCheckFailedException {
  return error instanceof ConditionalCheckFailedException || (error instanceof Error && error.name === "ConditionalCheckFailedException");
}

/**
 * Errors worth another try on one hot item: throttling (AWS: a hot partition) and DynamoDB Local's
 * `InternalServerError ... waiting for a lock` when many writers hit one item at once. The SDK
 * retries these too, but its retry quota (a token bucket per client) runs dry within a burst of
 * hundreds of concurrent failures, after which every one surfaces. Each retried write is safe to
 * repeat: its condition (grant id absent / present, `ver`) makes a second application fail.
 */
function isContention(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const n = error.name;
  return (
    n === "ThrottlingException" ||
    n === "ProvisionedThroughputExceededException" ||
    n === "RequestLimitExceeded" ||
    n === "TransactionConflictException" ||
    (n === "InternalServerError" && /lock/i.test(error.message))
  );
}

const CONTENTION_ATTEMPTS = 12;

function numberOrUndefined(v: unknown): number | undefined {
  return v === undefined || v === null ? undefined : Number(v);
}

/**
 * The item a failed conditional write saw (`ReturnValuesOnConditionCheckFailure: ALL_OLD`). The
 * document client does not unmarshall it. `undefined` when the item did not exist (or the store
 * did not return it): the caller reads the item then.
 */
function itemOfFailure(error: unknown): Item | undefined {
  const raw = (error as { Item?: Record<string, AttributeValue> }).Item;
  return raw && Object.keys(raw).length > 0 ? unmarshall(raw) : undefined;
}

/** `doc.send` with jittered exponential backoff (2 ms .. 200 ms) on contention; anything else is thrown at once. */
async function sendRetrying<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      if (attempt >= CONTENTION_ATTEMPTS || !isContention(error)) throw error;
      const cap = Math.min(200, 2 * 2 ** attempt);
      await new Promise((r) => setTimeout(r, Math.random() * cap));
    }
  }
}

/**
 * The tenant's month budget on the single table (`ADMIT#<tenant>` / `BUDGET#<month>`).
 * DynamoDB conditions cannot add, so the item keeps `remaining = limit - used - held` as its
 * own counter, and every grant is one `remaining >= :n` conditional update of it.
 */
export class DynamoBudgetStore implements BudgetStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async take(key: BudgetKey, grant: Grant, limits: BudgetLimits, initialUse: () => Promise<{ tokens: number; nanoUsd: number }>): Promise<TakeResult> {
    for (let round = 0; round < 8; round++) {
      try {
        const out = await sendRetrying(() => this.doc.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: admissionKeys.budget(key.tenantId, key.month),
            // What is left after this grant comes back with it: the caller sizes its next take, or
            // refuses calls that cannot fit, without a read.
            ReturnValues: "UPDATED_NEW",
            UpdateExpression:
              "SET remainingTokens = remainingTokens - :t, remainingNanoUsd = remainingNanoUsd - :u, heldTokens = heldTokens + :t, heldNanoUsd = heldNanoUsd + :u, grants.#g = :grant",
            // Protects against lending budget that is not there (two processes racing for the last
            // of it both see enough; only one decrement passes), against a grant id lent twice, and
            // against lending under limits that changed since (the item's limits must be ours).
            ConditionExpression: "remainingTokens >= :t AND remainingNanoUsd >= :u AND attribute_not_exists(grants.#g) AND limitKey = :lk",
            // A refusal needs the item (what is left, whose grants): DynamoDB returns it with the
            // failed condition, so deciding costs no second round trip.
            ReturnValuesOnConditionCheckFailure: "ALL_OLD",
            ExpressionAttributeNames: { "#g": grant.id },
            ExpressionAttributeValues: {
              ":t": grant.tokens,
              ":u": grant.nanoUsd,
              ":lk": limitKey(limits),
              ":grant": { tokens: grant.tokens, nanoUsd: grant.nanoUsd, expiresAt: grant.expiresAt, holder: grant.holder },
            },
          }),
        ));
        const a = out.Attributes ?? {};
        return { ok: true, remainingTokens: numberOrUndefined(a.remainingTokens), remainingNanoUsd: numberOrUndefined(a.remainingNanoUsd) };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        // Why it failed decides what to do: the item as the failed write saw it (returned with the
        // failure); a store that does not return it is read (consistent).
        const old = itemOfFailure(error) ?? (await this.get(key));
        if (old && (old.grants as Record<string, unknown> | undefined)?.[grant.id] !== undefined) {
          // The grant is there already: an earlier attempt of this same write landed and its answer
          // was lost (the SDK or the contention retry sent it again). Grant ids are unique per take,
          // so it is ours: lent once, and what is left is what the item shows.
          const state = budgetFromItem(old);
          return { ok: true, remainingTokens: state.remainingTokens, remainingNanoUsd: state.remainingNanoUsd };
        }
        if (!old) {
          await this.create(key, limits, await initialUse());
          continue;
        }
        if (old.limitKey !== limitKey(limits)) {
          await this.changeLimits(key, old, limits);
          continue;
        }
        const state = budgetFromItem(old);
        // The condition may have failed on an item that did not exist yet (another process created
        // it since) or on a budget that has been given back since: if the grant fits what is there
        // now, ask again rather than refuse a call the budget can hold.
        if (state.remainingTokens >= grant.tokens && state.remainingNanoUsd >= grant.nanoUsd && round < 7) continue;
        const now = Date.now();
        return {
          ok: false,
          remainingTokens: state.remainingTokens,
          remainingNanoUsd: state.remainingNanoUsd,
          outstandingGrants: state.grants.length,
          expiredGrants: state.grants.filter((g) => g.expiresAt <= now).length,
        };
      }
    }
    throw new Error(`budget of ${key.tenantId} ${key.month}: the item kept changing while taking a grant`);
  }

  async giveBack(key: BudgetKey, grant: Pick<Grant, "id" | "tokens" | "nanoUsd">, spent: { tokens: number; nanoUsd: number }): Promise<boolean> {
    return this.conditional({
      UpdateExpression:
        "SET remainingTokens = remainingTokens + :backT, remainingNanoUsd = remainingNanoUsd + :backU, usedTokens = usedTokens + :st, usedNanoUsd = usedNanoUsd + :su, heldTokens = heldTokens - :gt, heldNanoUsd = heldNanoUsd - :gu REMOVE grants.#g",
      // Once per grant: a second give-back (a retry, or the sweeper racing the holder) finds it gone.
      ConditionExpression: "attribute_exists(grants.#g)",
      ExpressionAttributeNames: { "#g": grant.id },
      ExpressionAttributeValues: {
        ":backT": grant.tokens - spent.tokens,
        ":backU": grant.nanoUsd - spent.nanoUsd,
        ":st": spent.tokens,
        ":su": spent.nanoUsd,
        ":gt": grant.tokens,
        ":gu": grant.nanoUsd,
      },
    }, key);
  }

  renew(key: BudgetKey, grantId: string, expiresAt: number): Promise<boolean> {
    return this.conditional({
      UpdateExpression: "SET grants.#g.expiresAt = :e",
      // A grant reclaimed as expired stays reclaimed: renewing must not recreate a map entry.
      ConditionExpression: "attribute_exists(grants.#g)",
      ExpressionAttributeNames: { "#g": grantId },
      ExpressionAttributeValues: { ":e": expiresAt },
    }, key);
  }

  bind(key: BudgetKey, grantId: string, eventId: string): Promise<boolean> {
    return this.conditional({
      UpdateExpression: "SET grants.#g.eventId = :e",
      // Only a grant still out: a settled one must not come back as a partial map entry.
      ConditionExpression: "attribute_exists(grants.#g)",
      ExpressionAttributeNames: { "#g": grantId },
      ExpressionAttributeValues: { ":e": eventId },
    }, key);
  }

  async read(key: BudgetKey): Promise<BudgetState | undefined> {
    const item = await this.get(key);
    return item ? budgetFromItem(item) : undefined;
  }

  async reconcile(key: BudgetKey, truth: { tokens: number; nanoUsd: number }): Promise<number> {
    for (let round = 0; round < 5; round++) {
      const item = await this.get(key);
      if (!item) return 0;
      const s = budgetFromItem(item);
      const held = Number(item.heldTokens ?? 0);
      const heldU = Number(item.heldNanoUsd ?? 0);
      // What the ingest counted beyond what admission charged and still holds: usage that never
      // went through admission. Grants out may already be partly counted, so they are not added again.
      const gapT = Math.max(0, truth.tokens - (s.usedTokens + held));
      const gapU = Math.max(0, truth.nanoUsd - (s.usedNanoUsd + heldU));
      if (gapT === 0 && gapU === 0) return 0;
      const ok = await this.conditional({
        UpdateExpression: "SET usedTokens = usedTokens + :gt, remainingTokens = remainingTokens - :gt, usedNanoUsd = usedNanoUsd + :gu, remainingNanoUsd = remainingNanoUsd - :gu",
        // Based on the counters we read: a give-back or grant in between changes them, and the gap is computed again.
        ConditionExpression: "usedTokens = :u AND heldTokens = :h AND usedNanoUsd = :uu AND heldNanoUsd = :hu",
        ExpressionAttributeValues: { ":gt": gapT, ":gu": gapU, ":u": s.usedTokens, ":h": held, ":uu": s.usedNanoUsd, ":hu": heldU },
      }, key);
      if (ok) return gapT;
    }
    return 0;
  }

  private async create(key: BudgetKey, limits: BudgetLimits, used: { tokens: number; nanoUsd: number }): Promise<void> {
    try {
      await sendRetrying(() => this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            ...admissionKeys.budget(key.tenantId, key.month),
            type: "admission-budget",
            tenantId: key.tenantId,
            month: key.month,
            ...openingBudget(limits, used),
            grants: {},
            expiresAt: Math.floor(Date.parse(`${key.month}-01T00:00:00Z`) / 1000) + BUDGET_TTL_SECONDS,
          },
          // Two processes creating the month's budget at once: the first wins, the second uses it.
          ConditionExpression: "attribute_not_exists(pk)",
        }),
      ));
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
    }
  }

  private async changeLimits(key: BudgetKey, old: Item, limits: BudgetLimits): Promise<void> {
    const oldT = Number(old.limitTokens ?? UNLIMITED);
    const oldU = Number(old.limitNanoUsd ?? UNLIMITED);
    const newT = limits.tokens ?? UNLIMITED;
    const newU = limits.nanoUsd ?? UNLIMITED;
    await this.conditional({
      UpdateExpression: "SET limitKey = :nk, limitTokens = :nt, limitNanoUsd = :nu, remainingTokens = remainingTokens + :dt, remainingNanoUsd = remainingNanoUsd + :du",
      // Once per change: a concurrent process applying the same change finds the new key and skips.
      ConditionExpression: "limitKey = :ok",
      ExpressionAttributeValues: { ":nk": limitKey(limits), ":ok": old.limitKey, ":nt": newT, ":nu": newU, ":dt": newT - oldT, ":du": newU - oldU },
    }, key);
  }

  private async get(key: BudgetKey): Promise<Item | undefined> {
    const out = await sendRetrying(() => this.doc.send(new GetCommand({ TableName: this.tableName, Key: admissionKeys.budget(key.tenantId, key.month), ConsistentRead: true })));
    return out.Item;
  }

  private async conditional(
    expr: { UpdateExpression: string; ConditionExpression: string; ExpressionAttributeNames?: Record<string, string>; ExpressionAttributeValues: Item },
    key: BudgetKey,
  ): Promise<boolean> {
    try {
      await sendRetrying(() => this.doc.send(new UpdateCommand({ TableName: this.tableName, Key: admissionKeys.budget(key.tenantId, key.month), ...expr })));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }
}

export function budgetFromItem(i: Item): BudgetState {
  const grants = Object.entries((i.grants ?? {}) as Record<string, Item>).map(([id, g]) => ({
    id,
    tokens: Number(g.tokens),
    nanoUsd: Number(g.nanoUsd),
    expiresAt: Number(g.expiresAt),
    holder: String(g.holder ?? ""),
    ...(typeof g.eventId === "string" ? { eventId: g.eventId } : {}),
  }));
  const limT = Number(i.limitTokens);
  const limU = Number(i.limitNanoUsd);
  return {
    tenantId: String(i.tenantId),
    month: String(i.month),
    ...(limT < UNLIMITED ? { limitTokens: limT } : {}),
    ...(limU < UNLIMITED ? { limitNanoUsd: limU } : {}),
    usedTokens: Number(i.usedTokens ?? 0),
    usedNanoUsd: Number(i.usedNanoUsd ?? 0),
    remainingTokens: Number(i.remainingTokens ?? 0),
    remainingNanoUsd: Number(i.remainingNanoUsd ?? 0),
    grants,
  };
}

/** Pool windows (`POOL#<pool>` / `WINDOW#<start>`): per-tier token and request counters plus a version. */
export class DynamoPoolStore implements PoolStore {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly clock: () => number = Date.now,
  ) {}

  async read(poolId: string, window: number): Promise<PoolWindow> {
    const out = await sendRetrying(() => this.doc.send(new GetCommand({ TableName: this.tableName, Key: admissionKeys.poolWindow(poolId, window), ConsistentRead: true })));
    const i = out.Item ?? {};
    const tokens: Partial<Record<TierName, number>> = {};
    const requests: Partial<Record<TierName, number>> = {};
    for (const t of TIER_NAMES) {
      tokens[t] = Number(i[`t_${t}`] ?? 0);
      requests[t] = Number(i[`r_${t}`] ?? 0);
    }
    return { use: { tokens, requests }, version: Number(i.ver ?? 0) };
  }

  async add(poolId: string, window: number, deltas: PoolDeltas, version: number, ttlSeconds: number): Promise<boolean> {
    const tiers = (Object.keys(deltas) as TierName[]).filter((t) => deltas[t] !== undefined);
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ":one": 1, ":exp": Math.floor(this.clock() / 1000) + ttlSeconds, ...(version === 0 ? {} : { ":v": version }) };
    const adds = tiers.map((t, i) => {
      names[`#t${i}`] = `t_${t}`;
      names[`#r${i}`] = `r_${t}`;
      values[`:t${i}`] = deltas[t]!.tokens;
      values[`:r${i}`] = deltas[t]!.requests;
      return `#t${i} :t${i}, #r${i} :r${i}`;
    });
    try {
      await sendRetrying(() => this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: admissionKeys.poolWindow(poolId, window),
          UpdateExpression: `ADD ${[...adds, "ver :one"].join(", ")} SET expiresAt = if_not_exists(expiresAt, :exp)`,
          // The decisions were made on the window as read: any admission or settlement since
          // (another process) changes `ver`, and the caller reads and decides again.
          ConditionExpression: version === 0 ? "attribute_not_exists(ver)" : "ver = :v",
          ...(tiers.length > 0 ? { ExpressionAttributeNames: names } : {}),
          ExpressionAttributeValues: values,
        }),
      ));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async adjust(poolId: string, window: number, tier: TierName, deltaTokens: number, deltaRequests: number, ttlSeconds: number): Promise<void> {
    // No condition: ADD commutes; `ver` moves so a decision based on the old counts is re-made.
    await sendRetrying(() => this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: admissionKeys.poolWindow(poolId, window),
        UpdateExpression: "ADD #t :t, #r :r, ver :one SET expiresAt = if_not_exists(expiresAt, :exp)",
        ExpressionAttributeNames: { "#t": `t_${tier}`, "#r": `r_${tier}` },
        ExpressionAttributeValues: { ":t": deltaTokens, ":r": deltaRequests, ":one": 1, ":exp": Math.floor(this.clock() / 1000) + ttlSeconds },
      }),
    ));
  }
}

/** The ingest's aggregates and ledger, read only (the billing truth admission reconciles against). */
export class DynamoUsageTruth implements UsageTruth {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async monthUse(tenantId: string, month: string): Promise<{ tokens: number; nanoUsd: number }> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month }), ConsistentRead: true }),
    );
    const c = (out.Item ?? {}) as Partial<UsageCounters>;
    return { tokens: quotaTokens(c), nanoUsd: (c.costNanoUsd ?? 0) + (c.allocatedCostNanoUsd ?? 0) };
  }

  async counted(tenantId: string, eventId: string): Promise<CountedEvent | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: keys.ledger(tenantId, eventId), ConsistentRead: true }));
    const l = out.Item;
    if (!l) return undefined;
    // A claimed entry counts only once its holder's writes reached the month aggregate (shared/usage/README.md).
    const claim = countedClaimOf(l);
    if (claim && !(await this.inMonth(claim))) return undefined;
    const counters = (l.counters ?? {}) as Partial<UsageCounters>;
    return {
      inputTokens: Number(l.inputTokens ?? 0),
      outputTokens: Number(l.outputTokens ?? 0),
      // The ledger keeps cache-write counts only for estimates/unpriced entries; otherwise 0 (documented).
      cacheWriteInputTokens: Number(counters.cacheWriteInputTokens ?? 0),
      costNanoUsd: Number(l.costNanoUsd ?? 0),
    };
  }

  /**
   * Whether the call is in the tenant's month aggregate (what admission settles against), by
   * single GetItems (the data-plane policy allows nothing else): a legacy group's marker
   * committed; a high-water run recorded done, or the month item carrying the mark of the
   * entry's holder or of an earlier one.
   */
  private async inMonth(claim: CountedClaim): Promise<boolean> {
    const get = async (key: { pk: string; sk: string }) => (await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }))).Item;
    if (!claim.hw) return (await get(keys.commitMarker(claim.held.run, claim.held.group)))?.state === "committed";
    if (Number((await get(keys.epoch(claim.held.run)))?.done ?? 0) >= claim.held.group) return true;
    const month = await get(keys.aggregate(claim.tenantId, { kind: "tenant", granularity: "month", period: claim.occurredAt.slice(0, 7) }));
    return reachedBy(marksIn(month ?? {}), [...(claim.prev ?? []), claim.held]);
  }
}

/** The tenant's effective policy: its CONFIG item over the tier catalog (the quota domain's own rule). */
export class QuotaPolicySource implements PolicySource {
  private readonly store: DynamoQuotaStore;
  constructor(
    doc: DynamoDBDocumentClient,
    tableName: string,
    private readonly tiers: TierCatalog = DEFAULT_TIERS,
    private readonly defaultTier: TierName = "basic",
  ) {
    this.store = new DynamoQuotaStore(doc, tableName);
  }

  async policy(tenantId: string): Promise<TierPolicy> {
    return effectivePolicy(this.tiers, await this.store.getConfig(tenantId), this.defaultTier);
  }
}
