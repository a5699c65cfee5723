import { defineConfig } from "vitest/config";
import { announceNodeVersion } from "./local/node-version.ts";

// One line when Node is outside the supported range (and no AWS SDK warning block in every worker).
const nodeEnv = announceNodeVersion();

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/helpers/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores here: parallel files share one DynamoDB Local; keep it from thrashing.
    maxWorkers: 2,
    env: { AWS_REGION: "us-west-2", AWS_ACCESS_KEY_ID: "local", AWS_SECRET_ACCESS_KEY: "local", ...nodeEnv },
  },
});
