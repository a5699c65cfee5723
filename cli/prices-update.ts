/**
 * `npm run prices:update [-- --published yyyy-mm-dd] [--check]`: regenerates
 * shared/pricing/bedrock-prices.json from the installed `@pydantic/genai-prices` (pinned in
 * package.json). Upgrade the package first (`npm install -D -E @pydantic/genai-prices@<v>`),
 * then run this and commit the diff: new models get rows, changed prices get a new dated row
 * (the day that version was published on npm), old rows stay so past events keep their prices.
 * `--check` exits 1 when the file is not what the installed package gives (for CI).
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { findProvider } from "@pydantic/genai-prices";
import { SEED_PRICES } from "../shared/pricing/catalog";
import { mergeHistory, rowsFromSource, type SnapshotFile, type SourceModel } from "../shared/pricing/source";

const PACKAGE = "@pydantic/genai-prices";
const FILE = fileURLToPath(new URL("../shared/pricing/bedrock-prices.json", import.meta.url));

function installedVersion(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve(PACKAGE);
  const pkg = JSON.parse(readFileSync(main.replace(/dist\/index\.c?js$/, "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

function publishedOn(version: string): string {
  // The registry's own record of when this version was published (npm's ordinary client).
  const out = execFileSync("npm", ["view", `${PACKAGE}@${version}`, "time", "--json"], { encoding: "utf8" });
  const time = JSON.parse(out) as Record<string, string>;
  if (!time[version]) throw new Error(`npm has no publish time for ${PACKAGE}@${version}; pass --published yyyy-mm-dd`);
  return time[version].slice(0, 10);
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { published: { type: "string" }, check: { type: "boolean" } } });
  const version = installedVersion();
  const provider = findProvider({ providerId: "aws" });
  if (!provider) throw new Error(`${PACKAGE}@${version} has no 'aws' provider`);
  const previous = JSON.parse(readFileSync(FILE, "utf8")) as SnapshotFile;
  const same = previous.sourceVersion === version;
  const published = values.published ?? (same ? previous.sourcePublished : publishedOn(version));
  const fresh = rowsFromSource(provider.models as unknown as SourceModel[], `${PACKAGE}@${version}`);
  const prices = mergeHistory(previous.prices, SEED_PRICES, fresh, published);
  const next: SnapshotFile = {
    source: `${PACKAGE} (npm), provider 'aws' (${provider.pricing_urls?.join(", ") ?? "AWS Bedrock pricing"})`,
    sourceVersion: version,
    sourcePublished: published,
    generatedOn: same ? previous.generatedOn : new Date().toISOString().slice(0, 10),
    prices,
  };
  const text = `${JSON.stringify(next, null, 1)}\n`;
  if (values.check) {
    const ok = readFileSync(FILE, "utf8") === text;
    console.log(ok ? `bedrock-prices.json matches ${PACKAGE}@${version}` : `bedrock-prices.json differs from ${PACKAGE}@${version}: run npm run prices:update`);
    return ok ? 0 : 1;
  }
  writeFileSync(FILE, text);
  console.log(`wrote ${prices.length} rows from ${PACKAGE}@${version} (published ${published}) to ${FILE}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : error);
    process.exit(1);
  },
);
