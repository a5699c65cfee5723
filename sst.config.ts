import type { SSTConfig } from "sst";
import { Storage } from "./stacks/Storage";
import { Ingest } from "./stacks/Ingest";
import { Alerts } from "./stacks/Alerts";
import { Enforcement } from "./stacks/Enforcement";
import { Api } from "./stacks/Api";
import { Jobs } from "./stacks/Jobs";
import { InvocationLogs } from "./stacks/InvocationLogs";
import { Ops } from "./stacks/Ops";
import { Admission } from "./stacks/Admission";

/** Orders the stacks; each stack owns one concern (see stacks/README.md). Ops comes last: it watches all of them. */
export default {
  config(input) {
    return { name: "genai-metering", region: input.region ?? "us-west-2" };
  },
  stacks(app) {
    app.stack(Storage).stack(Ingest).stack(Alerts).stack(Enforcement).stack(Api).stack(Jobs).stack(InvocationLogs).stack(Admission).stack(Ops);
  },
} satisfies SSTConfig;
