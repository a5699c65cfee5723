/**
 * `npm run cli -- <command> [options]`: operator commands. Each command lives in its own
 * module exporting `run(argv): Promise<number>` (the exit code).
 */
const COMMANDS: Record<string, { module: string; about: string }> = {
  plan: { module: "./plan", about: "cost planner: annual cost per model/instance option, break-even" },
  tenant: { module: "./tenant", about: "show or set a tenant's tier and quota overrides" },
  "billing-export": { module: "./billing-export", about: "write a month's invoice lines (JSON lines + CSV)" },
  allocate: { module: "./allocate", about: "share fixed endpoint cost of an hour among its tenants" },
  "outbox-sweep": { module: "./outbox-sweep", about: "publish pending enforcement events no evaluation retried" },
  reprice: { module: "./reprice", about: "price usage counted before its model had a price" },
  attribution: { module: "./attribution", about: "per-tenant Bedrock inference profiles (plan/create), CUR 2.0 cost by tenant tag vs ours" },
  reconcile: { module: "./reconcile", about: "compare metered usage with AWS's CloudWatch figures per model and hour; drift report" },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? COMMANDS[name] : undefined;
  if (!command) {
    console.log("usage: npm run cli -- <command> [options]\n");
    for (const [n, c] of Object.entries(COMMANDS)) console.log(`  ${n.padEnd(16)} ${c.about}`);
    return name && name !== "help" && name !== "--help" ? 2 : 0;
  }
  const mod = (await import(command.module)) as { run(argv: string[]): Promise<number> };
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? `${error.name}: ${error.message}` : error);
    process.exit(1);
  },
);
