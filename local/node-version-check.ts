// Imported first by local/main.ts: the Node notice comes before anything else, and before any AWS SDK client exists.
import { announceNodeVersion } from "./node-version";

announceNodeVersion();
